"""Zoom hygiene: ghosts of cancelled or vanished bookings are deleted, live meetings kept, orphans listed."""

from __future__ import annotations

from io import StringIO

import pytest
import responses
from django.core.management import call_command
from responses import matchers

from bookings.models import Booking
from calsync.models import Alert
from conferencing import hygiene
from conferencing.models import ZoomMeeting
from conferencing.sync import event_lock
from conferencing.tasks import zoom_hygiene
from tests.conferencing.conftest import API
from tests.conferencing.test_sync import MEETING_ID, MEETING_URL, OLD_MARKER, create_old_meeting, warm_caches
from tests.conftest import load_json

pytestmark = pytest.mark.django_db

DELETE_MATCH = [matchers.query_param_matcher({"schedule_for_reminder": "false"})]


@pytest.fixture(autouse=True)
def zoom(zoom_settings):
    return zoom_settings


def ghost(rsps) -> ZoomMeeting:
    """A meeting whose booking was cancelled while its Zoom delete never happened (a failed sync, say)."""
    create_old_meeting(rsps)
    Booking.objects.update(status=Booking.Status.CANCELED)
    return ZoomMeeting.objects.get()


def test_a_ghost_of_a_cancelled_booking_is_deleted_and_reported(rsps):
    meeting = ghost(rsps)
    rsps.add(responses.DELETE, MEETING_URL, status=204, match=DELETE_MATCH)
    report = hygiene.run()
    assert [f.removed for f in report.ghosts] == [True]
    assert report.lines() == [
        f"meeting {MEETING_ID} at 2026-11-27 10:00 UTC, booking #{meeting.booking_id}: its booking was cancelled "
        f"→ deleted meeting {MEETING_ID}"
    ]
    assert report.summary() == "1 meeting(s) removed; 0 kept for a human or the pipeline"
    meeting.refresh_from_db()
    assert meeting.status == "deleted" and meeting.deleted_at is not None
    calls = len(rsps.calls)
    assert hygiene.run().ghosts == [] and len(rsps.calls) == calls == 2  # the next run has nothing to do


def test_a_live_meeting_is_left_alone(rsps):
    create_old_meeting(rsps)
    report = hygiene.run()
    assert report.ghosts == report.kept == [] and len(rsps.calls) == 1  # only the create
    assert ZoomMeeting.objects.get().status == "live"


def test_already_gone_in_zoom_counts_as_done(rsps):
    meeting = ghost(rsps)
    rsps.add(responses.DELETE, MEETING_URL, status=404, json=load_json("zoom/error_meeting_not_found.json"))
    report = hygiene.run()
    assert report.removed and report.ghosts[0].outcome == f"meeting {MEETING_ID} was already gone"
    meeting.refresh_from_db()
    assert meeting.status == "deleted"


def test_dry_run_changes_nothing(rsps):
    meeting = ghost(rsps)
    out = StringIO()
    call_command("zoom_hygiene", "--dry-run", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("its booking was cancelled → would delete")
    assert lines[-1] == "1 meeting(s) would be deleted; 0 kept for a human or the pipeline"
    meeting.refresh_from_db()
    assert meeting.status == "live" and len(rsps.calls) == 1


def test_a_meeting_whose_booking_is_gone_is_deleted(rsps):
    create_old_meeting(rsps)
    Booking.objects.all().delete()  # the row keeps its event, the booking link goes null
    rsps.add(responses.DELETE, MEETING_URL, status=204)
    report = hygiene.run()
    assert report.ghosts[0].reason == "its booking is gone" and report.removed


def test_a_meeting_calendly_now_provides_the_conference_for_is_deleted(rsps):
    create_old_meeting(rsps)
    Booking.objects.update(location_type="zoom_conference", location_join_url="https://us06web.zoom.us/j/1")
    rsps.add(responses.DELETE, MEETING_URL, status=204)
    report = hygiene.run()
    assert report.ghosts[0].reason.startswith("no live booking needs it: Calendly provides the conference")
    assert report.removed


def test_live_bookings_outside_zoom_event_types_are_kept_for_a_human(rsps, zoom):
    create_old_meeting(rsps)
    zoom.ZOOM_EVENT_TYPES = ["Onboarding call"]
    report = hygiene.run()
    assert report.ghosts == [] and "may hold the link" in report.kept[0].reason
    assert len(rsps.calls) == 1


def test_a_rescheduled_booking_waiting_for_its_new_half_keeps_the_meeting(rsps):
    create_old_meeting(rsps)
    Booking.objects.update(status=Booking.Status.RESCHEDULED)
    report = hygiene.run()
    assert report.ghosts == [] and "waiting for the new booking" in report.kept[0].reason
    assert ZoomMeeting.objects.get().status == "live"


def test_an_event_being_synced_is_skipped_until_the_next_run(rsps):
    meeting = ghost(rsps)
    with event_lock(meeting.event_uri):
        report = hygiene.run()
    assert report.ghosts[0].outcome.startswith("skipped: another worker") and not report.removed
    assert ZoomMeeting.objects.get().status == "live" and len(rsps.calls) == 1


def test_the_schedule_alerts_only_when_it_removed_something(rsps):
    create_old_meeting(rsps)
    assert zoom_hygiene() == "0 meeting(s) removed; 0 kept for a human or the pipeline"
    assert not Alert.objects.exists()
    Booking.objects.update(status=Booking.Status.CANCELED)
    rsps.add(responses.DELETE, MEETING_URL, status=204)
    assert zoom_hygiene().startswith("1 meeting(s) removed")
    alert = Alert.objects.get()
    assert alert.kind == "zoom_hygiene" and str(MEETING_ID) in alert.summary
    assert "Jonas" not in alert.summary  # ids and times, no invitee names


def test_zoom_not_configured_does_nothing(rsps, zoom):
    zoom.ZOOM_CLIENT_SECRET = ""
    assert zoom_hygiene() == "Zoom not configured"


# --- orphans ----------------------------------------------------------------------------------------


def list_pages(rsps, host: str) -> None:
    url = f"{API}/users/{host}/meetings"
    page1 = load_json("zoom/meetings_upcoming_page1.json")
    rsps.add(
        responses.GET, url, json=page1, match=[matchers.query_param_matcher({"type": "upcoming", "page_size": "300"})]
    )
    rsps.add(
        responses.GET,
        url,
        json=load_json("zoom/meetings_upcoming_page2.json"),
        match=[
            matchers.query_param_matcher(
                {"type": "upcoming", "page_size": "300", "next_page_token": page1["next_page_token"]}
            )
        ],
    )


def test_orphans_are_listed_and_deleted_only_when_asked(rsps, zoom):
    warm_caches()
    host = zoom.ZOOM_DEFAULT_USER
    list_pages(rsps, host)
    out = StringIO()
    call_command("zoom_hygiene", "--scan-zoom", stdout=out)
    text = out.getvalue()
    # Page 1's meeting mentions the marker but not as its first line: not ours.
    assert f"orphan meeting {MEETING_ID} of {host} at 2026-11-27T10:00:00Z, {OLD_MARKER}, no booking → listed" in text
    assert "81234567890" not in text and "1 orphan(s) in Zoom" in text and "--delete-orphans" in text
    assert not any(c.request.method == "DELETE" for c in rsps.calls)

    list_pages(rsps, host)
    rsps.add(responses.DELETE, MEETING_URL, status=204, match=DELETE_MATCH)
    out = StringIO()
    call_command("zoom_hygiene", "--scan-zoom", "--delete-orphans", stdout=out)
    assert f"orphan meeting {MEETING_ID}" in out.getvalue() and "→ deleted" in out.getvalue()
    assert "1 orphan(s) in Zoom, 1 deleted" in out.getvalue()


def test_a_meeting_with_a_record_is_not_an_orphan(rsps, zoom):
    create_old_meeting(rsps)  # row for MEETING_ID, hosted by the Calendly host's Zoom user
    list_pages(rsps, "z8yAAAAA8bbbQ")
    rsps.add(responses.GET, f"{API}/users/{zoom.ZOOM_DEFAULT_USER}/meetings", json={"meetings": []})
    assert hygiene.scan_orphans() == []
