"""The event → booking state machine: order-independent, idempotent, never backwards."""

import itertools

import pytest

from bookings.intake import Outcome, store_delivery
from bookings.models import Booking, WebhookEvent
from bookings.processing import process_event
from tests.conftest import load_fixture, load_json, to_body, variant

pytestmark = pytest.mark.django_db

CREATED = "calendly/invitee_created.json"
CANCELED = "calendly/invitee_canceled.json"
RESCHED_OLD = "calendly/reschedule_1_invitee_canceled_old.json"
RESCHED_NEW = "calendly/reschedule_2_invitee_created_new.json"
# The original booking of the reschedule pair, as Calendly first sent it (before it was moved).
ORIGINAL = variant(
    RESCHED_OLD,
    status="active",
    rescheduled=False,
    new_invitee=None,
    cancellation=None,
    updated_at="2026-11-20T13:25:51.662087Z",
    **{"scheduled_event.status": "active", "scheduled_event.updated_at": "2026-11-20T13:25:51.640218Z"},
)
ORIGINAL["event"] = "invitee.created"
ORIGINAL["payload"]["scheduled_event"].pop("cancellation")


def deliver(body) -> WebhookEvent:
    raw = body if isinstance(body, bytes) else to_body(body)
    result = store_delivery(raw)
    assert result.outcome is not Outcome.UNUSABLE, result.reason
    event = WebhookEvent.objects.get(pk=result.event.pk)
    process_event(event.pk)
    event.refresh_from_db()
    return event


def snapshot() -> dict:
    """Everything about the bookings that must not depend on arrival order."""
    rows = {}
    for b in Booking.objects.all():
        rows[b.invitee_uri] = {
            "status": b.status,
            "start_at": b.start_at,
            "event_uri": b.event_uri,
            "canceled_by": b.canceled_by,
            "cancel_reason": b.cancel_reason,
            "canceler_type": b.canceler_type,
            "previous": b.rescheduled_from.invitee_uri if b.rescheduled_from else None,
            "previous_uri": b.previous_invitee_uri,
            "next_uri": b.next_invitee_uri,
            "email": b.invitee_email,
            "location_type": b.location_type,
            "questions": b.questions,
        }
    return rows


def test_created_makes_a_scheduled_booking():
    event = deliver(load_fixture(CREATED))
    booking = Booking.objects.get()
    assert event.status == "done" and event.booking == booking
    assert booking.status == Booking.Status.SCHEDULED
    assert booking.host_email == "marta.ruiz@acme-sales.example"
    assert booking.location_type == "zoom" and booking.calendly_owns_conference
    assert booking.location_join_url.startswith("https://us06web.zoom.us/j/85512345678")
    assert booking.answer_to("Deal ID") == "18734521"
    assert booking.duration_minutes == 30
    assert booking.invitee_phone == "+34 612 345 678"


def test_cancel_after_create():
    deliver(load_fixture(CREATED))
    deliver(load_fixture(CANCELED))
    booking = Booking.objects.get()
    assert booking.status == Booking.Status.CANCELED
    assert booking.canceled_by == "Marta Ruiz" and booking.canceler_type == "host"
    assert booking.cancel_reason == "Client asked to move the demo to January"
    assert booking.canceled_at is not None


@pytest.mark.parametrize("order", list(itertools.permutations([CREATED, CANCELED])))
def test_create_cancel_in_any_order_same_end_state(order):
    for name in order:
        deliver(load_fixture(name))
    state = snapshot()
    Booking.objects.all().delete()
    WebhookEvent.objects.all().delete()
    for name in (CREATED, CANCELED):
        deliver(load_fixture(name))
    assert state == snapshot()
    assert Booking.objects.get().status == Booking.Status.CANCELED


def test_a_late_create_never_revives_a_cancelled_booking():
    deliver(load_fixture(CANCELED))
    event = deliver(load_fixture(CREATED))
    assert event.status == "done"
    assert Booking.objects.get().status == Booking.Status.CANCELED


def test_stale_data_never_overwrites_newer():
    newer = variant(CREATED, updated_at="2026-11-26T00:00:00Z", name="New Name")
    deliver(newer)
    stale = variant(
        CANCELED,
        updated_at="2026-11-25T00:00:00Z",
        name="Old Name",
        **{"scheduled_event.updated_at": "2026-11-25T00:00:00Z"},
    )
    deliver(stale)
    booking = Booking.objects.get()
    assert booking.invitee_name == "New Name"  # stale descriptive data ignored…
    assert booking.status == Booking.Status.CANCELED  # …but the cancellation itself is never lost


RESCHEDULE_ORDERS = [
    [ORIGINAL, RESCHED_OLD, RESCHED_NEW],  # natural order
    [ORIGINAL, RESCHED_NEW, RESCHED_OLD],  # the new half first
    [RESCHED_NEW, RESCHED_OLD, ORIGINAL],  # everything backwards
    [RESCHED_OLD, ORIGINAL, RESCHED_NEW],
    [RESCHED_NEW, ORIGINAL, RESCHED_OLD],
    [RESCHED_OLD, RESCHED_NEW, ORIGINAL],
]


def _body(item):
    return load_fixture(item) if isinstance(item, str) else to_body(item)


@pytest.mark.parametrize("order", RESCHEDULE_ORDERS, ids=lambda o: "-".join(str(i)[:30] for i in range(len(o))))
def test_reschedule_in_every_order_ends_the_same(order):
    for item in RESCHEDULE_ORDERS[0]:
        deliver(_body(item))
    natural = snapshot()
    Booking.objects.all().delete()
    WebhookEvent.objects.all().delete()
    for item in order:
        deliver(_body(item))
    assert snapshot() == natural
    old_uri = load_json(RESCHED_OLD)["payload"]["uri"]
    new_uri = load_json(RESCHED_NEW)["payload"]["uri"]
    old, new = Booking.objects.get(invitee_uri=old_uri), Booking.objects.get(invitee_uri=new_uri)
    assert old.status == Booking.Status.RESCHEDULED and new.status == Booking.Status.SCHEDULED
    assert new.rescheduled_from == old and old.rescheduled_to == new
    assert [b.pk for b in new.chain()] == [old.pk, new.pk]


def test_reschedule_halves_alone_link_as_soon_as_both_exist():
    deliver(load_fixture(RESCHED_NEW))
    new = Booking.objects.get()
    assert new.previous_invitee_uri.endswith("2c5e8f1a-3b4d-4c6e-9f7a-8b1c2d3e4f5a")
    assert new.rescheduled_from is None
    event = deliver(load_fixture(RESCHED_OLD))
    new.refresh_from_db()
    assert new.rescheduled_from.invitee_uri == event.invitee_uri


def test_cancel_with_rescheduled_false_is_a_real_cancellation():
    body = variant(RESCHED_OLD, rescheduled=False, new_invitee=None)
    deliver(body)
    assert Booking.objects.get().status == Booking.Status.CANCELED


def test_processing_twice_changes_nothing():
    event = deliver(load_fixture(CREATED))
    before = snapshot()
    event.status = "failed"
    event.save()
    process_event(event.pk)
    assert snapshot() == before


def test_group_event_one_booking_per_invitee_and_cancel_of_one_leaves_the_other():
    base = load_json(CREATED)
    second = variant(CREATED, uri=base["payload"]["event"] + "/invitees/SECOND", email="b@clientco.example")
    deliver(base)
    deliver(second)
    cancel_second = variant(CANCELED, uri=base["payload"]["event"] + "/invitees/SECOND", email="b@clientco.example")
    deliver(cancel_second)
    statuses = dict(Booking.objects.values_list("invitee_email", "status"))
    assert statuses == {"lucia.fernandez@clientco.example": "scheduled", "b@clientco.example": "canceled"}


def test_relink_heals_a_race_where_neither_half_saw_the_other():
    """Two workers applied the halves at once: each row names the other, but no link was made."""
    from bookings.state import relink

    deliver(load_fixture(RESCHED_NEW))
    new = Booking.objects.get()
    old_fields = {f.name: getattr(new, f.name) for f in Booking._meta.fields if f.name not in ("id",)}
    old = Booking.objects.create(
        **{
            **old_fields,
            "invitee_uri": new.previous_invitee_uri,
            "previous_invitee_uri": "",
            "next_invitee_uri": new.invitee_uri,
            "status": Booking.Status.RESCHEDULED,
        }
    )
    assert new.rescheduled_from is None
    assert {b.pk for b in relink([old])} == {old.pk, new.pk}
    new.refresh_from_db()
    assert new.rescheduled_from == old
