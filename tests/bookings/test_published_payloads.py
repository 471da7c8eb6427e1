"""Calendly's own published webhook-payload examples through the real webhook view and processing.

The fixtures in tests/fixtures/calendly/published/ are retyped from Calendly's documentation and its
2023 OpenAPI spec (sources in that folder's README), not written from our own reading of the API.
"""

import pytest

from bookings.models import Booking, WebhookEvent
from bookings.processing import process_event
from tests.conftest import load_fixture, load_json

pytestmark = pytest.mark.django_db

API = "https://api.calendly.com"
EVENT_UUID = "AAAAAAAAAAAAAAAA"
REAL_RECONCILERS = ["conferencing.sync.reconcile", "crm.sync.reconcile"]


@pytest.fixture(autouse=True)
def real_pipeline(settings):
    # Every step the production pipeline runs (Zoom and Kommo are not configured here, so they say so).
    settings.CALSYNC_RECONCILERS = REAL_RECONCILERS


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("invitee_created.json", "invitee.created"),
        ("invitee_canceled.json", "invitee.canceled"),
        ("invitee_no_show_created.json", "invitee_no_show.created"),
        ("invitee_no_show_deleted.json", "invitee_no_show.deleted"),
    ],
)
def test_each_published_invitee_example_is_accepted_and_processed(post_delivery, name, kind):
    raw = load_fixture(f"calendly/published/{name}")
    response = post_delivery(raw)
    assert response.status_code == 202, response.content
    event = WebhookEvent.objects.get(pk=response.json()["id"])
    assert event.kind == kind and bytes(event.raw_body) == raw
    assert event.status == WebhookEvent.Status.DONE, event.last_error
    booking = event.booking
    assert booking.invitee_uri == f"{API}/scheduled_events/{EVENT_UUID}/invitees/AAAAAAAAAAAAAAAA"
    assert booking.invitee_email == "test@example.com" and booking.host_email == "user@example.com"
    assert booking.event_type_name == "15 Minute Meeting" and booking.location_type == "physical"
    steps = {s["step"]: s["detail"] for s in event.processing_attempts.get().steps}
    assert steps["conferencing"] == "Zoom not configured" and steps["crm"] == "Kommo not configured"


def test_published_examples_in_sequence_end_cancelled_and_no_show_undone(post_delivery):
    for name in ("invitee_created", "invitee_no_show_created", "invitee_no_show_deleted", "invitee_canceled"):
        assert post_delivery(load_fixture(f"calendly/published/{name}.json")).status_code == 202
    booking = Booking.objects.get()
    assert booking.status == Booking.Status.CANCELED and booking.cancel_reason == "Meeting Conflict"
    assert booking.no_show_at is not None and not booking.is_no_show


def test_the_published_routing_form_submission_is_stored_ignored_and_answered_200(post_delivery):
    raw = load_fixture("calendly/published/routing_form_submission_created.json")
    response = post_delivery(raw)
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.kind == "routing_form_submission.created" and event.status == WebhookEvent.Status.IGNORED
    assert not Booking.objects.exists()


# --- a payload without `scheduled_event` (Calendly's 2023 spec example) ---------------------------------


def api_event() -> dict:
    """The REST Event the API answers for the example's `payload.event` (a future meeting)."""
    event = load_json("calendly/published/invitee_created.json")["payload"]["scheduled_event"]
    event.update(
        uri=f"{API}/scheduled_events/{EVENT_UUID}",
        start_time="2026-12-03T10:00:00.000000Z",
        end_time="2026-12-03T10:15:00.000000Z",
        calendar_event={"kind": "google", "external_id": "8d2b0f1e4a6c"},
    )
    return event


@pytest.fixture
def calendly_api(settings):
    settings.CALENDLY_API_URL = API
    settings.CALENDLY_API_TOKEN = "calendly-test-token"


def test_an_example_without_scheduled_event_is_stored_then_completed_from_the_api(post_delivery, rsps, calendly_api):
    rsps.get(f"{API}/scheduled_events/{EVENT_UUID}", json={"resource": api_event()})
    response = post_delivery(load_fixture("calendly/published/spec_2023_invitee_created.json"))
    assert response.status_code == 202, response.content
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.DONE, event.last_error
    assert event.event_uri == f"{API}/scheduled_events/{EVENT_UUID}"
    booking = event.booking
    assert booking.start_at.isoformat() == "2026-12-03T10:00:00+00:00" and booking.duration_minutes == 15
    assert booking.host_email == "user@example.com"
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer calendly-test-token"


def test_without_a_token_it_is_retried_like_any_transient_failure(post_delivery, settings):
    settings.CALENDLY_API_TOKEN = ""
    assert post_delivery(load_fixture("calendly/published/spec_2023_invitee_created.json")).status_code == 202
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED and event.next_attempt_at is not None
    assert "no scheduled_event" in event.last_error and "CALENDLY_API_TOKEN is not set" in event.last_error
    assert not Booking.objects.exists()


def test_with_the_api_down_it_is_retried(post_delivery, rsps, calendly_api, monkeypatch):
    from bookings import calendly_api as client_module

    monkeypatch.setattr(client_module, "DEFAULT_SLEEP", lambda seconds: None)
    for _ in range(4):  # the first try and its three read retries
        rsps.get(f"{API}/scheduled_events/{EVENT_UUID}", status=503, json={"title": "Service Unavailable"})
    post_delivery(load_fixture("calendly/published/spec_2023_invitee_created.json"))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED and event.next_attempt_at is not None
    assert "503" in event.last_error
    # Once Calendly answers, the retry completes it.
    rsps.get(f"{API}/scheduled_events/{EVENT_UUID}", json={"resource": api_event()})

    assert process_event(event.pk, trigger="retry") == WebhookEvent.Status.DONE
    assert Booking.objects.get().start_at.isoformat() == "2026-12-03T10:00:00+00:00"
