"""Reconciliation and backfill against a mocked Calendly API, through the real pipeline."""

import copy
import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError

from bookings import processing
from bookings.backfill import backfill_window
from bookings.calendly_api import CalendlyClient
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from bookings.tasks import BACKFILL_LOCK, backfill_recent_bookings
from tests.bookings.fake_reconcilers import FIRST
from tests.conftest import load_fixture, load_json, to_body, variant
from tests.ops import recording_reconciler
from tests.ops.api import API, ME, mock_events, mock_invitees, mock_me, page, split_delivery

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SINCE = datetime(2026, 11, 24, tzinfo=UTC)
UNTIL = datetime(2027, 1, 24, tzinfo=UTC)
CREATED = "calendly/invitee_created.json"
CANCELED = "calendly/invitee_canceled.json"


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Reconcile the window, running the on-commit enqueues (tests process tasks in-process)."""

    def _run(**kw):
        with django_capture_on_commit_callbacks(execute=True):
            return backfill_window(CalendlyClient.from_settings(), SINCE, UNTIL, now=NOW, **kw)

    return _run


def booked(fixture=CREATED, data=None) -> Booking:
    """A booking calsync already has: the webhook arrived and was processed."""
    result = store_delivery(to_body(data) if data is not None else load_fixture(fixture))
    processing.process_event(result.event.pk)
    return Booking.objects.get(invitee_uri=(data or load_json(fixture))["payload"]["uri"])


def test_missed_create_is_fed_through_the_pipeline_as_a_webhook_shaped_delivery(rsps, run, post_delivery):
    delivery = load_json(CREATED)
    invitee, event = split_delivery(delivery)
    mock_me(rsps)
    mock_events(rsps, "active", [event])
    mock_events(rsps, "canceled", [])
    mock_invitees(rsps, event, [invitee])

    report = run()

    assert [(k, u) for k, u, _ in report.stored] == [("invitee.created", invitee["uri"])]
    stored = WebhookEvent.objects.get()
    assert stored.source == "reconciliation" and stored.kind == "invitee.created"
    assert stored.dedupe_key == f"invitee.created|{invitee['uri']}"
    envelope = json.loads(bytes(stored.raw_body))
    assert set(envelope) == {"created_at", "created_by", "event", "payload"}
    assert envelope["created_by"] == ME and envelope["created_at"] == invitee["created_at"]
    assert envelope["payload"] == {**invitee, "scheduled_event": event}
    assert envelope["payload"]["event"] == event["uri"]  # a URI string, as in a webhook
    # It went through the same pipeline.
    stored.refresh_from_db()
    assert stored.status == "done"
    booking = Booking.objects.get()
    assert booking.invitee_uri == invitee["uri"] and booking.is_live
    assert booking.location_join_url == event["location"]["join_url"]

    # Calendly's own delivery arrives late: recognised as the same event, nothing processed twice.
    response = post_delivery(load_fixture(CREATED))
    assert response.status_code == 200 and response.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1


def test_missed_cancel_is_found_and_cancels_the_booking(rsps, run):
    booking = booked()
    invitee, event = split_delivery(load_json(CANCELED))
    mock_me(rsps)
    mock_events(rsps, "active", [])
    mock_events(rsps, "canceled", [event])
    mock_invitees(rsps, event, [invitee])

    report = run()

    assert [(k, u) for k, u, _ in report.stored] == [("invitee.canceled", booking.invitee_uri)]
    cancel = WebhookEvent.objects.get(kind="invitee.canceled")
    assert cancel.source == "reconciliation" and cancel.status == "done"
    assert json.loads(bytes(cancel.raw_body))["created_at"] == invitee["cancellation"]["created_at"]
    booking.refresh_from_db()
    assert booking.status == "canceled" and booking.cancel_reason == "Client asked to move the demo to January"
    assert booking.canceler_type == "host"


def test_a_run_with_nothing_to_do_stores_nothing_and_skips_invitee_calls(rsps, run):
    booking = booked()
    _, event = split_delivery(load_json(CREATED))
    mock_me(rsps)
    mock_events(rsps, "active", [event])  # invitees_counter 1/1 matches our one live booking
    mock_events(rsps, "canceled", [])

    report = run()

    assert report.stored == [] and report.events_seen == 1 and report.events_in_sync == 1
    assert report.invitees_checked == 0 and report.requests == 3
    assert len(rsps.calls) == 3
    assert WebhookEvent.objects.count() == 1  # only the original delivery
    booking.refresh_from_db()
    assert booking.status == "scheduled"


def test_an_empty_window_stores_nothing(rsps, run):
    mock_me(rsps)
    mock_events(rsps, "active", [])
    mock_events(rsps, "canceled", [])
    assert run().stored == []
    assert not WebhookEvent.objects.exists()


def group_invitee(base: dict, n: int) -> dict:
    invitee = copy.deepcopy(base)
    invitee["uri"] = f"{base['event']}/invitees/group-{n}"
    invitee["email"] = f"guest{n}@clientco.example"
    invitee["name"] = f"Guest {n}"
    return invitee


def test_events_and_invitees_are_read_page_by_page(rsps, run):
    invitee, event = split_delivery(load_json(CREATED))
    event["invitees_counter"] = {"total": 3, "active": 3, "limit": 5}
    other = copy.deepcopy(event)
    other["uri"] = f"{API}/scheduled_events/0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
    other["invitees_counter"] = {"total": 0, "active": 0, "limit": 5}  # nobody left: in sync, no call
    mock_me(rsps)
    rsps.get(f"{API}/scheduled_events", json=page([event], next_page=f"{API}/scheduled_events?page_token=2"))
    rsps.get(f"{API}/scheduled_events", json=page([other]))
    mock_events(rsps, "canceled", [])
    invitees_url = f"{event['uri']}/invitees"
    rsps.get(
        invitees_url, json=page([group_invitee(invitee, 1), group_invitee(invitee, 2)], f"{invitees_url}?page_token=b")
    )
    rsps.get(invitees_url, json=page([group_invitee(invitee, 3)]))

    report = run()

    assert report.events_seen == 2 and report.invitees_checked == 3
    assert sorted(Booking.objects.values_list("invitee_uri", flat=True)) == [
        f"{event['uri']}/invitees/group-{n}" for n in (1, 2, 3)
    ]
    assert {b.event_uri for b in Booking.objects.all()} == {event["uri"]}  # one booking per invitee


def test_an_invitee_already_in_the_pipeline_is_not_stored_again(fake_reconcilers, rsps, run, settings):
    settings.CALSYNC_RECONCILERS = [FIRST]
    from calsync.errors import SyncError

    fake_reconcilers.fail["first"] = SyncError("kommo down")
    result = store_delivery(load_fixture(CREATED))
    processing.process_event(result.event.pk)  # failed, retry pending
    fake_reconcilers.fail.clear()
    # Its booking exists but the invitee is now cancelled and that webhook is already stored.
    cancel = store_delivery(load_fixture(CANCELED))
    invitee, event = split_delivery(load_json(CANCELED))
    mock_me(rsps)
    mock_events(rsps, "active", [])
    mock_events(rsps, "canceled", [event])
    mock_invitees(rsps, event, [invitee])

    report = run()

    assert report.stored == []
    assert report.already_stored == [("invitee.canceled", invitee["uri"], cancel.event.pk)]
    assert WebhookEvent.objects.get(pk=cancel.event.pk).deliveries == 1  # not counted as a redelivery


def test_dry_run_reports_and_stores_nothing(rsps, run):
    invitee, event = split_delivery(load_json(CREATED))
    mock_me(rsps)
    mock_events(rsps, "active", [event])
    mock_events(rsps, "canceled", [])
    mock_invitees(rsps, event, [invitee])
    report = run(dry_run=True)
    assert report.stored == [("invitee.created", invitee["uri"], None)]
    assert not WebhookEvent.objects.exists() and not Booking.objects.exists()


# --- conference links Calendly was still making -------------------------------------------------------

PENDING_LOCATION = {"data": None, "join_url": None, "status": "processing", "type": "zoom"}
NEW_LINK = "https://us06web.zoom.us/j/85512345678?pwd=bVqT3xR8yK2nW5pL9cJ7hF4dS1aZ6e.1"


@pytest.fixture
def recorder(settings):
    recording_reconciler.SEEN.clear()
    settings.CALSYNC_RECONCILERS = ["tests.ops.recording_reconciler.record"]
    yield recording_reconciler.SEEN
    recording_reconciler.SEEN.clear()


def test_a_null_join_url_is_refreshed_and_the_booking_synced_again(rsps, run, recorder):
    booking = booked(data=variant(CREATED, **{"scheduled_event.location": PENDING_LOCATION}))
    assert booking.location_join_url == "" and booking.calendly_owns_conference
    assert recorder == [(booking.pk, "")]
    # Calendly made the link since; its event's updated_at did not move (the worst case).
    _, event = split_delivery(load_json(CREATED))
    mock_me(rsps)
    mock_events(rsps, "active", [event])
    mock_events(rsps, "canceled", [])

    report = run()

    assert report.links_refreshed == [booking.pk] and report.stored == []
    booking.refresh_from_db()
    assert booking.location_join_url == NEW_LINK and booking.conference_join_url == NEW_LINK
    assert booking.location_status == "pushed" and booking.location_conference_id == "85512345678"
    # The stored delivery (join_url null) was replayed and did not take the link away again.
    assert recorder == [(booking.pk, ""), (booking.pk, NEW_LINK)]
    event_row = WebhookEvent.objects.get()
    assert event_row.status == "done" and event_row.attempts == 2


def test_a_pending_link_outside_the_window_is_read_from_the_event(rsps, run, recorder):
    booking = booked(data=variant(CREATED, **{"scheduled_event.location": PENDING_LOCATION}))
    _, event = split_delivery(load_json(CREATED))
    mock_me(rsps)
    mock_events(rsps, "active", [])
    mock_events(rsps, "canceled", [])
    rsps.get(event["uri"], json={"resource": event})
    assert run().links_refreshed == [booking.pk]
    booking.refresh_from_db()
    assert booking.conference_join_url == NEW_LINK


def test_a_link_still_processing_changes_nothing(rsps, run, recorder):
    booking = booked(data=variant(CREATED, **{"scheduled_event.location": PENDING_LOCATION}))
    still = variant(CREATED, **{"scheduled_event.location": PENDING_LOCATION})
    _, event = split_delivery(still)
    mock_me(rsps)
    mock_events(rsps, "active", [event])
    mock_events(rsps, "canceled", [])
    assert run().links_refreshed == []
    booking.refresh_from_db()
    assert booking.location_join_url == "" and len(recorder) == 1


def test_a_conference_calendly_failed_to_make_is_no_longer_waited_for(rsps, run, recorder):
    booking = booked(data=variant(CREATED, **{"scheduled_event.location": PENDING_LOCATION}))
    failed = variant(CREATED, **{"scheduled_event.location": {**PENDING_LOCATION, "status": "failed"}})
    _, event = split_delivery(failed)
    mock_me(rsps)
    mock_events(rsps, "active", [event])
    mock_events(rsps, "canceled", [])
    assert run().links_refreshed == [booking.pk]
    booking.refresh_from_db()
    assert booking.location_status == "failed" and not booking.calendly_owns_conference
    # Synced again, now as a booking whose meeting is calsync's to make; and no longer polled.
    assert len(recorder) == 2 and WebhookEvent.objects.get().status == "done"
    from bookings.backfill import waiting_for_link

    assert not waiting_for_link(booking.start_at).exists()


# --- the command and the schedule ---------------------------------------------------------------------


def test_reconcile_command_dry_run(rsps):
    invitee, event = split_delivery(load_json(CREATED))
    mock_me(rsps)
    mock_events(rsps, "active", [event], min_start_time="2026-12-01T00:00:00.000000Z")
    mock_events(rsps, "canceled", [])
    mock_invitees(rsps, event, [invitee])
    out = StringIO()
    call_command("calendly_backfill", "--since", "2026-12-01", "--until", "2026-12-31", "--dry-run", stdout=out)
    assert f"would store invitee.created {invitee['uri']}" in out.getvalue()
    assert not WebhookEvent.objects.exists()


def test_reconcile_command_refuses_a_bad_window():
    with pytest.raises(CommandError, match="after"):
        call_command("calendly_reconcile", "--since", "2026-12-31", "--until", "2026-12-01")
    with pytest.raises(CommandError, match="relative"):
        call_command("calendly_reconcile", "--since", "now-2x", "--until", "now")


def test_scheduled_reconciliation_skips_without_a_token_or_while_one_runs(settings):
    cache.add(BACKFILL_LOCK, "1", timeout=60)
    assert backfill_recent_bookings() == "skipped: a reconciliation is already running"
    settings.CALENDLY_API_TOKEN = ""
    assert backfill_recent_bookings().startswith("skipped: CALENDLY_API_TOKEN")


def test_scheduled_reconciliation_runs_the_rolling_window(rsps, settings):
    settings.CALENDLY_RECONCILE_PAST_HOURS = 24
    settings.CALENDLY_RECONCILE_FUTURE_DAYS = 60
    mock_me(rsps)
    mock_events(rsps, "active", [])
    mock_events(rsps, "canceled", [])
    assert "0 event(s)" in backfill_recent_bookings()
    assert cache.get(BACKFILL_LOCK) is None  # released
