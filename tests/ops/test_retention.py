"""Retention: finished events lose raw bodies and personal data after CALSYNC_RETENTION_DAYS; ids stay."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, ProcessingAttempt, WebhookEvent
from bookings.retention import delete_old_events
from bookings.tasks import redact_old_events
from tests.bookings.fake_reconcilers import FIRST
from tests.conftest import load_fixture, to_body

pytestmark = pytest.mark.django_db


def aged(event_id: int, days: int) -> None:
    past = timezone.now() - timedelta(days=days)
    WebhookEvent.objects.filter(pk=event_id).update(received_at=past, processed_at=past)


@pytest.fixture
def events(fake_reconcilers, settings):
    settings.CALSYNC_RETENTION_DAYS = 180
    settings.CALSYNC_RECONCILERS = [FIRST]
    settings.CALSYNC_RETRY_BACKOFF = []
    old_done = store_delivery(load_fixture("calendly/invitee_created.json")).event.pk
    processing.process_event(old_done)
    old_ignored = store_delivery(
        to_body(
            {
                "created_at": "2026-01-01T00:00:00.000000Z",
                "created_by": "u",
                "event": "routing_form_submission.created",
                "payload": {
                    "uri": "https://api.calendly.com/routing_form_submissions/r1",
                    "questions_and_answers": [{"answer": "a@b.example"}],
                },
            }
        )
    ).event.pk
    fake_reconcilers.fail["first"] = RuntimeError("kommo down")
    old_failed = store_delivery(load_fixture("calendly/invitee_canceled.json")).event.pk
    processing.process_event(old_failed)
    fake_reconcilers.fail.clear()
    recent_done = store_delivery(load_fixture("calendly/reschedule_2_invitee_created_new.json")).event.pk
    processing.process_event(recent_done)
    for pk in (old_done, old_ignored, old_failed):
        aged(pk, 200)
    aged(recent_done, 10)
    yield {"old_done": old_done, "old_ignored": old_ignored, "old_failed": old_failed, "recent_done": recent_done}


def test_dry_run_reports_and_changes_nothing(events):
    out = StringIO()
    call_command("calendly_retention", "--dry-run", stdout=out)
    assert "would redact 2 finished event(s)" in out.getvalue()
    assert not WebhookEvent.objects.filter(redacted_at__isnull=False).exists()


def test_finished_events_past_retention_keep_ids_and_outcome_only(events):
    before = WebhookEvent.objects.get(pk=events["old_done"])
    assert redact_old_events().startswith("redacted 2")

    done = WebhookEvent.objects.get(pk=events["old_done"])
    assert bytes(done.raw_body) == b"" and done.invitee_email == "" and done.redacted_at is not None
    assert done.payload == {
        "redacted": True,
        "event": "invitee.created",
        "created_at": before.calendly_created_at.isoformat(),
        "payload": {"uri": before.invitee_uri, "event": before.event_uri},
        "outcome": "done",
        "booking": before.booking_id,
    }
    # Ids, outcome, the booking link and the processing history stay.
    assert (done.kind, done.status, done.invitee_uri, done.dedupe_key) == (
        before.kind,
        before.status,
        before.invitee_uri,
        before.dedupe_key,
    )
    assert done.booking_id == before.booking_id and done.processing_attempts.count() == 1
    assert "lucia" not in str(done.payload).lower()

    ignored = WebhookEvent.objects.get(pk=events["old_ignored"])
    assert ignored.payload["outcome"] == "ignored" and bytes(ignored.raw_body) == b""
    # A failed event still needs a human; a recent one is within retention.
    for key in ("old_failed", "recent_done"):
        kept = WebhookEvent.objects.get(pk=events[key])
        assert kept.redacted_at is None and bytes(kept.raw_body) and kept.invitee_email
    # Idempotent.
    assert redact_old_events().startswith("redacted 0")


def test_a_redelivery_of_a_redacted_event_is_still_recognised(events, post_delivery):
    redact_old_events()
    response = post_delivery(load_fixture("calendly/invitee_created.json"))
    assert response.status_code == 200 and response.json()["duplicate"] is True


# --- deletion after CALSYNC_EVENT_DELETE_DAYS ---------------------------------------------------------


@pytest.fixture
def finished_and_failed(fake_reconcilers, settings):
    settings.CALSYNC_RETENTION_DAYS = 180
    settings.CALSYNC_EVENT_DELETE_DAYS = 400
    settings.CALSYNC_RECONCILERS = [FIRST]
    settings.CALSYNC_RETRY_BACKOFF = []
    done = store_delivery(load_fixture("calendly/invitee_created.json")).event.pk
    processing.process_event(done)
    fake_reconcilers.fail["first"] = RuntimeError("kommo down")
    failed = store_delivery(load_fixture("calendly/invitee_canceled.json")).event.pk
    processing.process_event(failed)
    fake_reconcilers.fail.clear()
    return {"done": done, "failed": failed}


def test_finished_events_are_deleted_once_older_than_the_deletion_age(finished_and_failed, test_clock):
    done = WebhookEvent.objects.get(pk=finished_and_failed["done"])
    booking_id = done.booking_id

    test_clock.shift(timedelta(days=399))
    assert redact_old_events() == (
        f"redacted 1 finished event(s) older than {timezone.now() - timedelta(days=180):%Y-%m-%d %H:%M} UTC; "
        f"deleted 0 finished event(s) older than {timezone.now() - timedelta(days=400):%Y-%m-%d %H:%M} UTC"
    )
    assert WebhookEvent.objects.filter(pk=done.pk).exists()

    test_clock.shift(timedelta(days=2))
    assert "deleted 1 finished event(s)" in redact_old_events()
    assert not WebhookEvent.objects.filter(pk=done.pk).exists()
    assert not ProcessingAttempt.objects.filter(event_id=done.pk).exists()
    # A failed event still needs a human; the booking is the CRM's working record.
    assert WebhookEvent.objects.filter(pk=finished_and_failed["failed"]).exists()
    assert Booking.objects.filter(pk=booking_id).exists()


def test_deletion_dry_run_and_switch_off(finished_and_failed, test_clock, settings):
    test_clock.shift(timedelta(days=500))
    out = StringIO()
    call_command("calendly_retention", "--dry-run", stdout=out)
    assert "would delete 1 finished event(s)" in out.getvalue()
    assert WebhookEvent.objects.count() == 2

    settings.CALSYNC_EVENT_DELETE_DAYS = 0
    assert delete_old_events().deleted == 0 and WebhookEvent.objects.count() == 2
    out = StringIO()
    call_command("calendly_retention", "--delete-days", "450", stdout=out)
    assert "deleted 1 finished event(s)" in out.getvalue()
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [finished_and_failed["failed"]]
