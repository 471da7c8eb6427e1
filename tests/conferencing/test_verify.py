"""Zoom meetings verified against Zoom's live state, and a reschedule to another host moving the meeting."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.core.cache import cache
from responses import matchers

from bookings.models import Booking, SyncDrift
from bookings.verification import live_bookings, verify
from calsync.models import Alert
from conferencing.models import ZoomMeeting
from tests.conferencing.conftest import API
from tests.conferencing.test_sync import (
    CREATED,
    MEETING_ID,
    MEETING_URL,
    RESCHEDULE_NEW,
    RESCHEDULE_OLD,
    ZOOM_USER,
    create_old_meeting,
    deliver,
    expect_create,
    expect_patch,
    step_detail,
    warm_caches,
)
from tests.conftest import TEST_NOW, load_json

pytestmark = pytest.mark.django_db

NEW_HOST = "li.wang@acme-sales.example"
NEW_ZOOM_USER = "z9NEWHOSTuser"
REPLACEMENT = {**CREATED, "id": 89990001112, "join_url": "https://us06web.zoom.us/j/89990001112?pwd=TmV3.1"}
GONE = load_json("zoom/error_meeting_not_found.json")


@pytest.fixture(autouse=True)
def only_zoom(zoom_settings):
    zoom_settings.CALSYNC_VERIFIERS = ["conferencing.verify"]
    cache.clear()


def rescheduled_to(host_email: str) -> dict:
    data = copy.deepcopy(load_json(RESCHEDULE_NEW))
    data["payload"]["scheduled_event"]["event_memberships"][0].update(user_email=host_email, user_name="Li Wang")
    return data


# --- reschedule to another host ---------------------------------------------------------------------


def test_reschedule_to_another_zoom_host_moves_the_meeting_to_them(rsps):
    create_old_meeting(rsps)
    cache.set(f"zoom:user:{NEW_HOST}", NEW_ZOOM_USER, 3600)
    rsps.add(responses.POST, f"{API}/users/{NEW_ZOOM_USER}/meetings", json=REPLACEMENT, status=201)
    rsps.add(responses.DELETE, MEETING_URL, status=204)
    deliver(RESCHEDULE_OLD)
    event = deliver(rescheduled_to(NEW_HOST))
    assert event.status == "done", event.last_error
    new = Booking.objects.get(invitee_uri__endswith="7f1a4c8e-2d6b-4a9f-8e3c-6d5b4a3f2e1c")
    live = ZoomMeeting.objects.exclude(status="deleted").get()
    assert (live.meeting_id, live.host_user, live.booking_id) == (REPLACEMENT["id"], NEW_ZOOM_USER, new.pk)
    assert new.conference_join_url == REPLACEMENT["join_url"]  # crm.sync tells the deal this link
    assert ZoomMeeting.objects.get(meeting_id=MEETING_ID).status == "deleted"
    assert "under the new host" in step_detail(event)
    assert [c.request.method for c in rsps.calls[1:]] == ["POST", "DELETE"]


def test_reschedule_to_a_host_without_zoom_keeps_the_meeting_and_moves_it(rsps):
    create_old_meeting(rsps)
    cache.set(f"zoom:user:{NEW_HOST}", "", 3600)  # not a user of the Zoom account
    expect_patch(rsps)
    deliver(RESCHEDULE_OLD)
    assert deliver(rescheduled_to(NEW_HOST)).status == "done"
    assert ZoomMeeting.objects.exclude(status="deleted").get().meeting_id == MEETING_ID


# --- verification -----------------------------------------------------------------------------------


def booking_with_meeting(n: int, *, host: str = ZOOM_USER, start: datetime | None = None) -> Booking:
    start = start or TEST_NOW + timedelta(days=2, hours=n)
    booking = Booking.objects.create(
        invitee_uri=f"https://api.calendly.com/scheduled_events/EV{n}/invitees/IN{n}",
        event_uri=f"https://api.calendly.com/scheduled_events/EV{n}",
        event_type_name="Demo",
        start_at=start,
        end_at=start + timedelta(minutes=30),
        invitee_name=f"Invitee {n}",
        invitee_email=f"i{n}@example.com",
        host_email="marta.ruiz@acme-sales.example",
        conference_join_url=f"https://us06web.zoom.us/j/{8000 + n}",
    )
    ZoomMeeting.objects.create(
        booking=booking,
        event_uri=booking.event_uri,
        meeting_id=8000 + n,
        join_url=booking.conference_join_url,
        host_user=host,
        marker=f"calsync:IN{n}",
        start_at=start,
        duration=30,
        status="live",
    )
    return booking


def listed(*bookings: Booking, moved: dict | None = None) -> list[dict]:
    moved = moved or {}
    return [
        {
            "id": 8000 + int(b.invitee_uri[-1]),
            "host_id": ZOOM_USER,
            "start_time": moved.get(b.pk, b.start_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
            "duration": 30,
            "agenda": f"calsync:IN{b.invitee_uri[-1]}",
        }
        for b in bookings
    ]


def list_url(host: str = ZOOM_USER) -> str:
    return f"{API}/users/{host}/meetings"


def test_one_list_per_host_following_the_page_token(rsps):
    warm_caches()
    a, b, c = (booking_with_meeting(n) for n in (1, 2, 3))
    first = matchers.query_param_matcher({"type": "upcoming", "page_size": "300"})
    second = matchers.query_param_matcher({"type": "upcoming", "page_size": "300", "next_page_token": "T2"})
    rsps.get(list_url(), json={"next_page_token": "T2", "meetings": listed(a, b)}, match=[first])
    rsps.get(list_url(), json={"next_page_token": "", "meetings": listed(c)}, match=[second])
    report = verify(live_bookings(14))
    assert report.checked == 3 and report.findings == [] and len(rsps.calls) == 2


def test_a_meeting_deleted_by_hand_is_made_again_and_the_booking_gets_the_new_link(rsps):
    warm_caches()
    booking = booking_with_meeting(1)
    rsps.get(f"{API}/meetings/8001", status=404, json=GONE)  # one meeting of this host: one GET
    expect_create(rsps, json=REPLACEMENT)
    report = verify(live_bookings(14))
    assert report.repaired == 1, report.summary()
    booking.refresh_from_db()
    assert booking.conference_join_url == REPLACEMENT["join_url"]
    assert ZoomMeeting.objects.exclude(status="deleted").get().meeting_id == REPLACEMENT["id"]
    drift = SyncDrift.objects.get()
    assert (drift.service, drift.kind, drift.outcome) == ("zoom", "meeting_deleted", "repaired")
    assert "created meeting 89990001112" in drift.detail
    assert Alert.objects.filter(kind="drift").exists()


def test_a_meeting_missing_from_the_list_is_confirmed_before_repair(rsps):
    warm_caches()
    a, b = booking_with_meeting(1), booking_with_meeting(2)
    rsps.get(list_url(), json={"next_page_token": "", "meetings": listed(a)})
    rsps.get(f"{API}/meetings/8002", json={"id": 8002, "start_time": b.start_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert verify(live_bookings(14)).findings == []  # it was there after all (e.g. started already)


def test_a_meeting_moved_by_hand_is_raised_and_not_moved_back(rsps):
    warm_caches()
    a, b = booking_with_meeting(1), booking_with_meeting(2)
    rsps.get(list_url(), json={"next_page_token": "", "meetings": listed(a, b, moved={b.pk: "2026-11-28T09:00:00Z"})})
    report = verify(live_bookings(14))
    assert report.raised == 1 and len(rsps.calls) == 1  # no PATCH
    drift = SyncDrift.objects.get()
    assert (drift.booking_id, drift.kind, drift.outcome) == (b.pk, "meeting_moved", "raised")
    assert ZoomMeeting.objects.get(meeting_id=8002).start_at == b.start_at  # calsync's record unchanged


def test_a_failed_repair_is_tried_again_next_run(rsps):
    warm_caches()
    booking = booking_with_meeting(1)
    rsps.get(f"{API}/meetings/8001", status=404, json=GONE)
    expect_create(rsps, status=400, json={"code": 300, "message": "bad"})
    assert verify(live_bookings(14)).repaired == 0
    assert SyncDrift.objects.get().outcome == "failed"
    expect_create(rsps, json=REPLACEMENT)
    assert verify(live_bookings(14)).repaired == 1
    booking.refresh_from_db()
    assert booking.conference_join_url == REPLACEMENT["join_url"]
    assert SyncDrift.objects.get().outcome == "repaired"


def test_a_booking_being_synced_is_left_for_the_next_run(rsps):
    booking = booking_with_meeting(1)
    Booking.objects.filter(pk=booking.pk).update(
        sync_lock_token="x", sync_lock_expires_at=datetime.now(UTC) + timedelta(minutes=5)
    )
    assert verify(live_bookings(14)).checked == 0 and len(rsps.calls) == 0


def test_verify_sync_command_dry_run(rsps):
    from io import StringIO

    from django.core.management import call_command

    warm_caches()
    booking_with_meeting(1)
    rsps.get(f"{API}/meetings/8001", status=404, json=GONE)
    out = StringIO()
    call_command("verify_sync", "--days", "3", "--dry-run", stdout=out)
    assert "meeting_deleted" in out.getvalue() and "dry run" in out.getvalue()
    assert ZoomMeeting.objects.get().status == "live" and not SyncDrift.objects.exists()
