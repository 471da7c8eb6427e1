"""manage.py replay_event and resync_booking."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, ProcessingAttempt, WebhookEvent
from calsync.errors import SyncError
from tests.bookings.fake_reconcilers import FIRST
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def reconcilers(settings, fake_reconcilers):
    settings.CALSYNC_RECONCILERS = [FIRST]


def failed_event(fake_reconcilers, name="calendly/invitee_created.json") -> WebhookEvent:
    event = WebhookEvent.objects.get(pk=store_delivery(load_fixture(name)).event.pk)
    fake_reconcilers.fail["first"] = SyncError("Kommo is down")
    processing.process_event(event.pk)
    fake_reconcilers.fail.clear()
    event.refresh_from_db()
    assert event.status == "failed"
    return event


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_replay_by_id_inline(fake_reconcilers):
    event = failed_event(fake_reconcilers)
    output = run("replay_event", str(event.pk), "--inline")
    assert f"event #{event.pk}: done" in output and "summary: 1 done" in output
    assert WebhookEvent.objects.get(pk=event.pk).status == "done"


def test_replay_failed_via_queue(fake_reconcilers, django_capture_on_commit_callbacks):
    first = failed_event(fake_reconcilers)
    second = failed_event(fake_reconcilers, "calendly/invitee_canceled.json")
    with django_capture_on_commit_callbacks(execute=True):
        output = run("replay_event", "--failed")
    assert "summary: 2 queued" in output
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"done"}
    assert first.pk != second.pk


def test_dry_run_changes_nothing(fake_reconcilers):
    event = failed_event(fake_reconcilers)
    output = run("replay_event", "--failed", "--dry-run")
    assert f"event #{event.pk}: would replay" in output
    assert WebhookEvent.objects.get(pk=event.pk).status == "failed"
    assert ProcessingAttempt.objects.filter(event=event).count() == 1


def test_filters_since_until_kind(fake_reconcilers):
    created = failed_event(fake_reconcilers)
    canceled = failed_event(fake_reconcilers, "calendly/invitee_canceled.json")
    WebhookEvent.objects.filter(pk=created.pk).update(received_at=timezone.now() - timedelta(days=3))
    output = run("replay_event", "--failed", "--kind", "invitee.created", "--dry-run")
    assert f"#{created.pk}" in output and f"#{canceled.pk}" not in output
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    output = run("replay_event", "--failed", "--since", since, "--dry-run")
    assert f"#{canceled.pk}" in output and f"#{created.pk}" not in output
    output = run("replay_event", "--failed", "--until", since, "--dry-run")
    assert f"#{created.pk}" in output and f"#{canceled.pk}" not in output


def test_a_failing_replay_exits_non_zero_with_a_summary(fake_reconcilers):
    event = failed_event(fake_reconcilers)
    fake_reconcilers.fail["first"] = SyncError("still down")
    out = StringIO()
    with pytest.raises(CommandError, match="1 failed"):
        call_command("replay_event", str(event.pk), "--inline", stdout=out)
    assert "still down" in out.getvalue() and "summary: 1 failed" in out.getvalue()


@pytest.mark.parametrize(
    "args,message",
    [
        ((), "name event ids, or use --failed"),
        (("999",), "no such event: 999"),
        (("--failed", "--since", "yesterday"), "not an ISO date"),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("replay_event", *args, stdout=StringIO())


def test_resync_booking_by_id_and_by_uri(fake_reconcilers):
    event = failed_event(fake_reconcilers)
    booking = Booking.objects.get()
    output = run("resync_booking", str(booking.pk))
    assert f"booking #{booking.pk}" in output and "done" in output
    assert run("resync_booking", booking.invitee_uri).count("done") >= 1
    assert ProcessingAttempt.objects.filter(event=event).count() == 3


def test_resync_unknown_booking():
    with pytest.raises(CommandError, match="no booking"):
        call_command("resync_booking", "https://api.calendly.com/nope", stdout=StringIO())


def test_sweep_events_command_requeues_a_lost_event(django_capture_on_commit_callbacks):
    event = WebhookEvent.objects.get(pk=store_delivery(load_fixture("calendly/invitee_created.json")).event.pk)
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert run("sweep_events").strip() == "requeued 1, lost workers 0"
    assert WebhookEvent.objects.get(pk=event.pk).status == "done"
