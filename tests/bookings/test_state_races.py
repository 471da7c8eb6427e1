"""Two workers applying the two halves of a reschedule at once must wait for each other, not deadlock.

Row locks only conflict between real transactions, so this needs PostgreSQL (SQLite locks the whole
database and cannot deadlock on rows); on SQLite it is skipped.
"""

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from bookings.models import Booking
from bookings.state import relink, retry_on_deadlock
from tests.bookings.test_state import ORIGINAL, RESCHED_NEW, deliver
from tests.conftest import load_fixture, load_json, to_body


def _someone_waits_for_a_row_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_relink_waits_for_the_other_half_instead_of_deadlocking():
    if connection.vendor != "postgresql":
        pytest.skip("row-lock ordering needs PostgreSQL")
    old = deliver(ORIGINAL).booking
    new = Booking.objects.get(pk=old.pk)
    new.pk = None
    new.invitee_uri = load_json(RESCHED_NEW)["payload"]["uri"]
    new.event_uri = load_json(RESCHED_NEW)["payload"]["event"]
    new.previous_invitee_uri = old.invitee_uri  # the new half knows the old one; not linked yet
    new.save()
    holding_old = threading.Event()
    errors: list[BaseException] = []

    def old_half_worker() -> None:
        """Holds the old booking, and once the relink below is blocked, asks for the new one too."""
        try:
            with transaction.atomic():
                Booking.objects.select_for_update().get(pk=old.pk)
                holding_old.set()
                deadline = time.monotonic() + 10
                while not _someone_waits_for_a_row_lock():
                    assert time.monotonic() < deadline, "the relink never waited for the old booking"
                    time.sleep(0.02)
                Booking.objects.select_for_update().get(pk=new.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    worker = threading.Thread(target=old_half_worker)
    worker.start()
    assert holding_old.wait(10)
    try:
        # Before the fix this locked the new booking first, then waited for the old one while the
        # other worker waited for the new one: PostgreSQL aborted one of them ("deadlock detected").
        linked = relink([Booking.objects.get(pk=new.pk)])
    finally:
        worker.join(20)
    assert errors == []
    assert [b.pk for b in linked] == [old.pk, new.pk]
    assert Booking.objects.get(pk=new.pk).rescheduled_from_id == old.pk


@pytest.mark.django_db
def test_a_late_create_of_an_already_moved_booking_is_linked_not_booked_again():
    """New half first, then the old booking's own create (its cancel still to come): the old booking
    is rescheduled at once, so the reconcilers never sync it as a second live meeting."""
    deliver(load_fixture(RESCHED_NEW))
    deliver(to_body(ORIGINAL))
    old = Booking.objects.get(invitee_uri=ORIGINAL["payload"]["uri"])
    new = Booking.objects.get(invitee_uri=load_json(RESCHED_NEW)["payload"]["uri"])
    assert old.status == Booking.Status.RESCHEDULED
    assert new.rescheduled_from == old and old.next_invitee_uri == new.invitee_uri


@pytest.mark.django_db
def test_relink_finds_a_successor_that_names_us():
    """The old booking's relink (after a race) looks for a new half naming it, not only the reverse."""
    deliver(to_body(ORIGINAL))
    old = Booking.objects.get()
    new = Booking.objects.get(pk=old.pk)
    new.pk = None
    new.invitee_uri = load_json(RESCHED_NEW)["payload"]["uri"]
    new.previous_invitee_uri = old.invitee_uri
    new.save()
    assert {b.pk for b in relink([old])} == {old.pk, new.pk}
    new.refresh_from_db()
    assert new.rescheduled_from == old
    assert Booking.objects.get(pk=old.pk).status == Booking.Status.RESCHEDULED


class _Deadlock(Exception):
    sqlstate = "40P01"


def _operational(cause: Exception) -> OperationalError:
    error = OperationalError("deadlock detected" if isinstance(cause, _Deadlock) else "connection lost")
    error.__cause__ = cause
    return error


def test_a_deadlock_victim_transaction_runs_again():
    """Even with ordered locks, a half committing mid-way can be locked late: PostgreSQL then aborts one."""
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise _operational(_Deadlock())
        return "linked"

    assert retry_on_deadlock(flaky, sleep=sleeps.append) == "linked"
    assert len(calls) == 2 and sleeps == [0.05]


def test_other_database_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise _operational(RuntimeError("server closed the connection"))

    with pytest.raises(OperationalError):
        retry_on_deadlock(broken, sleep=lambda s: None)
    assert len(calls) == 1
