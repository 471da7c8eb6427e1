"""conferencing.sync.reconcile driven through the real pipeline (process_event) with Calendly fixtures.

Zoom calls are counted with a warm token and host cache where the brief asks for figures:
a booking costs 1 call (POST), a cancel 1 (DELETE), a reschedule 1 (PATCH); a replay costs 0.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from django.core.cache import cache
from responses import matchers

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from conferencing.models import ZoomMeeting
from conferencing.sync import event_lock, reconcile
from conferencing.zoom import CachedToken, CacheTokenStore
from tests.conferencing.conftest import API, BEARER, CLIENT_SECRET, TOKEN, add_token
from tests.conftest import load_json, to_body

pytestmark = pytest.mark.django_db

HOST_EMAIL = "marta.ruiz@acme-sales.example"
ZOOM_USER = "z8yAAAAA8bbbQ"
CREATE_URL = f"{API}/users/{ZOOM_USER}/meetings"
MEETING_ID = 84849729157
MEETING_URL = f"{API}/meetings/{MEETING_ID}"
CREATED = load_json("zoom/meeting_created.json")
OLD_MARKER = "calsync:2c5e8f1a-3b4d-4c6e-9f7a-8b1c2d3e4f5a"

RESCHEDULE_OLD = "calendly/reschedule_1_invitee_canceled_old.json"
RESCHEDULE_NEW = "calendly/reschedule_2_invitee_created_new.json"


@pytest.fixture(autouse=True)
def zoom(zoom_settings):
    cache.clear()
    return zoom_settings


def warm_caches() -> None:
    """A token another process already fetched and a host already looked up (the usual case)."""
    store = CacheTokenStore(cache, f"zoom:token:{zoom_settings_key()}")
    store.save(CachedToken(TOKEN, datetime.now(UTC).timestamp() + 3000))
    cache.set(f"zoom:user:{HOST_EMAIL}", ZOOM_USER, 3600)


def zoom_settings_key() -> str:
    from django.conf import settings

    return f"{settings.ZOOM_ACCOUNT_ID}:{settings.ZOOM_CLIENT_ID}"


def deliver(data: dict | str) -> WebhookEvent:
    raw = load_json(data) if isinstance(data, str) else data
    result = store_delivery(to_body(raw))
    event = WebhookEvent.objects.get(pk=result.event.pk)
    processing.process_event(event.pk)
    event.refresh_from_db()
    return event


def old_booking_created() -> dict:
    """The invitee.created the old half of the reschedule fixtures had, before it was moved."""
    data = copy.deepcopy(load_json(RESCHEDULE_OLD))
    data["event"] = "invitee.created"
    data["created_at"] = "2026-11-20T13:25:52.000000Z"
    p = data["payload"]
    p.update(status="active", rescheduled=False, new_invitee=None, cancellation=None)
    p["updated_at"] = "2026-11-20T13:25:51.662087Z"
    event = p["scheduled_event"]
    event.update(status="active", cancellation=None, updated_at="2026-11-20T13:25:51.640218Z")
    event["invitees_counter"]["active"] = 1
    return data


def custom_location(data: dict) -> dict:
    data = copy.deepcopy(data)
    data["payload"]["scheduled_event"]["location"] = {"type": "custom", "location": "Zoom link follows"}
    return data


def step_detail(event: WebhookEvent) -> str:
    attempt = event.processing_attempts.order_by("-number").first()
    return " | ".join(s["detail"] for s in attempt.steps if s["step"] == "conferencing")


def expect_create(rsps, *, body: dict | None = None, status=201, **kwargs):
    match = [matchers.header_matcher(BEARER)] + ([matchers.json_params_matcher(body)] if body else [])
    rsps.add(responses.POST, CREATE_URL, status=status, match=match, **kwargs)


def create_old_meeting(rsps) -> Booking:
    warm_caches()
    expect_create(rsps, json=CREATED)
    assert deliver(old_booking_created()).status == "done"
    return Booking.objects.get(invitee_uri__endswith="2c5e8f1a-3b4d-4c6e-9f7a-8b1c2d3e4f5a")


# --- create -----------------------------------------------------------------------------------------


def test_a_booking_gets_one_meeting_recorded_at_once(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    add_token(rsps)
    rsps.add(responses.GET, f"{API}/users/{HOST_EMAIL}", json=load_json("zoom/user.json"))
    expect_create(
        rsps,
        json=CREATED,
        body={
            "topic": "30-min Product Demo with Jonas Weber",
            "type": 2,
            "start_time": "2026-11-27T10:00:00Z",
            "duration": 30,
            "timezone": "Europe/Berlin",
            "agenda": f"{OLD_MARKER}\nBooked through Calendly; kept in step by calsync.",
            "settings": {
                "waiting_room": True,
                "join_before_host": False,
                "mute_upon_entry": True,
                "auto_recording": "none",
                "approval_type": 2,
            },
        },
    )
    event = deliver(old_booking_created())
    assert event.status == "done", event.last_error
    assert step_detail(event) == f"created meeting {MEETING_ID}"
    meeting = ZoomMeeting.objects.get()
    assert (meeting.meeting_id, meeting.status, meeting.host_user) == (MEETING_ID, "live", ZOOM_USER)
    assert meeting.join_url == CREATED["join_url"] and meeting.start_url == CREATED["start_url"]
    assert meeting.uuid == CREATED["uuid"] and meeting.marker == OLD_MARKER
    assert Booking.objects.get().conference_join_url == CREATED["join_url"]
    assert len(rsps.calls) == 3  # cold: token + host lookup + create
    # Secrets never reach the logs: the client secret, the token, the host's start URL.
    for secret in (CLIENT_SECRET, TOKEN, CREATED["start_url"]):
        assert secret not in caplog.text


def test_replay_of_a_finished_event_makes_no_zoom_calls(rsps):
    create_old_meeting(rsps)
    event = WebhookEvent.objects.get()
    calls = len(rsps.calls)
    for _ in range(2):
        assert processing.replay(event, inline=True).outcome == "done"
    assert len(rsps.calls) == calls == 1  # warm caches: a booking costs one Zoom call
    assert ZoomMeeting.objects.count() == 1


def test_unknown_host_falls_back_to_the_default_user_and_is_remembered(rsps, zoom):
    add_token(rsps)
    rsps.add(responses.GET, f"{API}/users/{HOST_EMAIL}", status=404, json=load_json("zoom/error_user_not_found.json"))
    rsps.add(responses.POST, f"{API}/users/{zoom.ZOOM_DEFAULT_USER}/meetings", status=201, json=CREATED)
    assert deliver(old_booking_created()).status == "done"
    assert ZoomMeeting.objects.get().host_user == zoom.ZOOM_DEFAULT_USER
    assert cache.get(f"zoom:user:{HOST_EMAIL}") == ""  # the next booking skips the lookup


# --- who gets a meeting -----------------------------------------------------------------------------


def test_calendly_owned_conference_makes_no_zoom_call(rsps):
    created = deliver("calendly/invitee_created.json")
    canceled = deliver("calendly/invitee_canceled.json")
    assert created.status == canceled.status == "done"
    assert step_detail(created) == "no Zoom meeting: Calendly provides the conference (zoom)"
    assert len(rsps.calls) == 0 and not ZoomMeeting.objects.exists()
    assert Booking.objects.get().conference_join_url.startswith("https://us06web.zoom.us/j/85512345678")


def test_event_type_not_selected_gets_nothing(rsps, zoom):
    zoom.ZOOM_EVENT_TYPES = ["Onboarding call"]
    event = deliver(old_booking_created())
    assert "not in ZOOM_EVENT_TYPES" in step_detail(event)
    assert len(rsps.calls) == 0 and not ZoomMeeting.objects.exists()


def test_event_type_selected_by_uri(rsps, zoom):
    zoom.ZOOM_EVENT_TYPES = ["https://api.calendly.com/event_types/3f6e2d1c-0b9a-4e8d-b7c6-5a4f3e2d1c0b"]
    create_old_meeting(rsps)
    assert ZoomMeeting.objects.filter(status="live").count() == 1


def test_zoom_not_configured_does_nothing(rsps, zoom):
    zoom.ZOOM_CLIENT_SECRET = ""
    event = deliver(old_booking_created())
    assert step_detail(event) == "Zoom not configured" and len(rsps.calls) == 0


# --- cancel -----------------------------------------------------------------------------------------


def cancel_of_old_booking() -> dict:
    data = copy.deepcopy(load_json(RESCHEDULE_OLD))
    data["payload"].update(rescheduled=False, new_invitee=None)
    return data


def test_cancel_deletes_the_meeting(rsps):
    create_old_meeting(rsps)
    rsps.add(responses.DELETE, MEETING_URL, status=204)
    event = deliver(cancel_of_old_booking())
    assert event.status == "done" and step_detail(event) == f"deleted meeting {MEETING_ID}"
    assert ZoomMeeting.objects.get().status == "deleted"
    assert len(rsps.calls) == 2  # a cancel costs one call
    processing.replay(event, inline=True)
    assert len(rsps.calls) == 2


def test_cancel_of_a_meeting_already_gone_is_success(rsps):
    create_old_meeting(rsps)
    rsps.add(responses.DELETE, MEETING_URL, status=404, json=load_json("zoom/error_meeting_not_found.json"))
    event = deliver(cancel_of_old_booking())
    assert event.status == "done" and step_detail(event) == f"meeting {MEETING_ID} was already gone"
    assert ZoomMeeting.objects.get().status == "deleted"


# --- reschedule -------------------------------------------------------------------------------------

NEW_START = "2026-12-01T16:00:00Z"


def expect_patch(rsps, status=204, **kwargs):
    body = {
        "topic": "30-min Product Demo with Jonas Weber",
        "start_time": NEW_START,
        "duration": 30,
        "timezone": "Europe/Berlin",
    }
    rsps.add(responses.PATCH, MEETING_URL, status=status, match=[matchers.json_params_matcher(body)], **kwargs)


def assert_one_live_meeting_on_the_new_booking(meeting_id=MEETING_ID, join_url=CREATED["join_url"]):
    new = Booking.objects.get(invitee_uri__endswith="7f1a4c8e-2d6b-4a9f-8e3c-6d5b4a3f2e1c")
    live = ZoomMeeting.objects.exclude(status="deleted")
    assert live.count() == 1
    meeting = live.get()
    assert (meeting.meeting_id, meeting.booking_id, meeting.event_uri) == (meeting_id, new.pk, new.event_uri)
    assert meeting.start_at == datetime(2026, 12, 1, 16, tzinfo=UTC) and meeting.status == "live"
    assert new.conference_join_url == join_url


@pytest.mark.parametrize("order", ["old_first", "new_first"])
def test_reschedule_moves_the_meeting_in_either_order(rsps, order):
    create_old_meeting(rsps)
    expect_patch(rsps)
    halves = [RESCHEDULE_OLD, RESCHEDULE_NEW] if order == "old_first" else [RESCHEDULE_NEW, RESCHEDULE_OLD]
    first = deliver(halves[0])
    if order == "old_first":
        assert "kept until the new booking arrives" in step_detail(first)
        assert len(rsps.calls) == 1  # nothing yet: the new booking is not known
    second = deliver(halves[1])
    assert first.status == second.status == "done", (first.last_error, second.last_error)
    assert_one_live_meeting_on_the_new_booking()
    assert len(rsps.calls) == 2  # a reschedule costs one call: the PATCH
    for event in WebhookEvent.objects.all():  # replaying everything changes nothing
        processing.replay(event, inline=True)
    assert len(rsps.calls) == 2
    assert_one_live_meeting_on_the_new_booking()


def test_reschedule_when_the_old_meeting_is_gone_creates_a_new_one(rsps):
    create_old_meeting(rsps)
    expect_patch(rsps, status=404, json=load_json("zoom/error_meeting_not_found.json"))
    replacement = {**CREATED, "id": 89990001112, "join_url": "https://us06web.zoom.us/j/89990001112?pwd=TmV3.1"}
    expect_create(rsps, json=replacement)
    deliver(RESCHEDULE_OLD)
    assert deliver(RESCHEDULE_NEW).status == "done"
    assert_one_live_meeting_on_the_new_booking(89990001112, replacement["join_url"])
    assert ZoomMeeting.objects.get(meeting_id=MEETING_ID).status == "deleted"


def test_reschedule_of_a_booking_we_never_saw_creates_one_meeting(rsps):
    warm_caches()
    expect_create(rsps, json=CREATED)
    assert deliver(RESCHEDULE_NEW).status == "done"
    assert deliver(RESCHEDULE_OLD).status == "done"
    assert len(rsps.calls) == 1
    assert_one_live_meeting_on_the_new_booking()


def test_daily_limit_on_reschedule_defers_to_the_reset(rsps):
    create_old_meeting(rsps)
    reset = (datetime.now(UTC) + timedelta(hours=7)).replace(microsecond=0)
    rsps.add(
        responses.PATCH,
        MEETING_URL,
        status=429,
        json=load_json("zoom/rate_limit_daily.json"),
        headers={"Retry-After": reset.strftime("%Y-%m-%dT%H:%M:%SZ"), "X-RateLimit-Type": "Daily-limit"},
    )
    deliver(RESCHEDULE_OLD)
    event = deliver(RESCHEDULE_NEW)
    assert event.status == "failed" and "daily limit" in event.last_error
    assert abs((event.next_attempt_at - reset).total_seconds()) < 5  # not the 1-minute backoff
    assert len(rsps.calls) == 2  # one PATCH, not a retry loop
    assert ZoomMeeting.objects.get().start_at == datetime(2026, 11, 27, 10, tzinfo=UTC)  # not moved yet


# --- lost create response ---------------------------------------------------------------------------


def test_a_create_whose_answer_was_lost_is_adopted_not_duplicated(rsps):
    warm_caches()
    rsps.add(responses.POST, CREATE_URL, body=requests.ReadTimeout("read timed out"))
    first = deliver(old_booking_created())
    assert first.status == "failed" and first.next_attempt_at is not None
    assert ZoomMeeting.objects.get().status == "creating"
    rsps.add(responses.GET, CREATE_URL, json=load_json("zoom/meetings_upcoming_page1.json"))
    rsps.add(responses.GET, CREATE_URL, json=load_json("zoom/meetings_upcoming_page2.json"))
    assert processing.process_event(first.pk, trigger="retry") == "done"
    first.refresh_from_db()
    assert "adopted meeting 84849729157" in step_detail(first)
    meeting = ZoomMeeting.objects.get()
    assert (meeting.meeting_id, meeting.status, meeting.start_url) == (MEETING_ID, "live", "")
    assert Booking.objects.get().conference_join_url == CREATED["join_url"]
    assert [c.request.method for c in rsps.calls] == ["POST", "GET", "GET"]  # no second POST


def test_a_create_that_never_reached_zoom_is_sent_again(rsps):
    warm_caches()
    rsps.add(responses.POST, CREATE_URL, status=502)
    assert deliver(old_booking_created()).status == "failed"
    page = {**load_json("zoom/meetings_upcoming_page2.json"), "meetings": []}
    rsps.add(responses.GET, CREATE_URL, json=page)
    expect_create(rsps, json=CREATED)
    assert processing.process_event(WebhookEvent.objects.get().pk) == "done"
    assert ZoomMeeting.objects.get().status == "live"
    assert [c.request.method for c in rsps.calls] == ["POST", "GET", "POST"]


def test_a_refused_create_leaves_no_in_flight_record(rsps):
    warm_caches()
    rsps.add(responses.POST, CREATE_URL, status=400, json={"code": 3161, "message": "Meeting hosting not allowed"})
    event = deliver(old_booking_created())
    assert event.status == "failed" and event.next_attempt_at is None  # needs a human
    assert not ZoomMeeting.objects.exists()


def test_cancel_after_a_lost_create_deletes_what_was_made(rsps):
    warm_caches()
    rsps.add(responses.POST, CREATE_URL, body=requests.ConnectionError("reset"))
    deliver(old_booking_created())
    rsps.add(responses.GET, CREATE_URL, json=load_json("zoom/meetings_upcoming_page2.json"))
    rsps.add(responses.DELETE, MEETING_URL, status=204)
    assert deliver(cancel_of_old_booking()).status == "done"
    assert ZoomMeeting.objects.get().status == "deleted"


# --- group events -----------------------------------------------------------------------------------

GROUP = "calendly/invitee_created.json"


def group_invitee(n: int, kind: str = "invitee.created") -> dict:
    data = custom_location(load_json(GROUP))
    p = data["payload"]
    event_uri = p["scheduled_event"]["uri"]
    p.update(uri=f"{event_uri}/invitees/0000000{n}-aaaa-4bbb-8ccc-ddddeeeeffff", email=f"guest{n}@kunde.example")
    p["name"] = f"Guest {n}"
    if kind == "invitee.canceled":
        data["event"] = kind
        p.update(status="canceled", rescheduled=False)
        p["cancellation"] = {"canceled_by": p["name"], "canceler_type": "invitee", "reason": None}
        p["updated_at"] = "2026-11-30T10:00:00.000000Z"
    return data


def test_group_event_shares_one_meeting_until_the_last_invitee_cancels(rsps):
    warm_caches()
    expect_create(rsps, json=CREATED)
    deliver(group_invitee(1))
    second = deliver(group_invitee(2))
    assert step_detail(second) == f"joined shared meeting {MEETING_ID}"
    assert len(rsps.calls) == 1 and ZoomMeeting.objects.count() == 1
    assert set(Booking.objects.values_list("conference_join_url", flat=True)) == {CREATED["join_url"]}

    first_cancel = deliver(group_invitee(1, "invitee.canceled"))
    assert "kept for the other invitees" in step_detail(first_cancel)
    assert len(rsps.calls) == 1
    meeting = ZoomMeeting.objects.get()
    assert meeting.status == "live" and meeting.booking.invitee_email == "guest2@kunde.example"

    rsps.add(responses.DELETE, MEETING_URL, status=204)
    deliver(group_invitee(2, "invitee.canceled"))
    assert ZoomMeeting.objects.get().status == "deleted" and len(rsps.calls) == 2


def test_group_invitee_rescheduling_does_not_take_the_shared_meeting_away(rsps):
    warm_caches()
    expect_create(rsps, json=CREATED)
    deliver(group_invitee(1))
    deliver(group_invitee(2))
    # Guest 1 moves to a new slot (a new scheduled event); guest 2 stays.
    new_event = "https://api.calendly.com/scheduled_events/11111111-2222-4333-8444-555566667777"
    new_uri = f"{new_event}/invitees/99999999-aaaa-4bbb-8ccc-ddddeeeeffff"
    old = group_invitee(1, "invitee.canceled")
    old["payload"].update(rescheduled=True, new_invitee=new_uri)
    new = group_invitee(1)
    new["payload"].update(uri=new_uri, old_invitee=old["payload"]["uri"], event=new_event)
    new["payload"]["scheduled_event"].update(
        uri=new_event, start_time="2026-12-03T15:00:00.000000Z", end_time="2026-12-03T15:30:00.000000Z"
    )
    second = {**CREATED, "id": 89990001112, "join_url": "https://us06web.zoom.us/j/89990001112?pwd=TmV3.1"}
    expect_create(rsps, json=second)
    assert deliver(new).status == "done"
    assert deliver(old).status == "done"
    assert [c.request.method for c in rsps.calls] == ["POST", "POST"]  # no PATCH of the shared meeting
    shared = ZoomMeeting.objects.get(meeting_id=MEETING_ID)
    assert shared.status == "live" and shared.start_at == datetime(2026, 12, 2, 15, tzinfo=UTC)
    assert shared.booking.invitee_email == "guest2@kunde.example"
    assert ZoomMeeting.objects.get(meeting_id=89990001112).booking.invitee_uri == new_uri


# --- concurrency ------------------------------------------------------------------------------------


def test_a_second_worker_on_the_same_event_backs_off(rsps, zoom):
    zoom.CALSYNC_RECONCILERS = []
    deliver(custom_location(load_json(GROUP)))
    booking = Booking.objects.get()
    with event_lock(booking.event_uri):
        with pytest.raises(Exception, match="another worker") as err:
            reconcile(booking)
    assert err.value.retry_after == 30


# --- admin ------------------------------------------------------------------------------------------


def test_admin_never_shows_the_start_url(rsps, admin_client):
    create_old_meeting(rsps)
    meeting = ZoomMeeting.objects.get()
    for url in ("/admin/conferencing/zoommeeting/", f"/admin/conferencing/zoommeeting/{meeting.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert str(MEETING_ID) in response.content.decode()
        assert "zak=" not in response.content.decode() and "start_url" not in response.content.decode()


def test_a_killed_holders_event_lock_expires_with_the_processing_lease(settings, monkeypatch):
    """A worker SIGKILLed inside the lock must not block the event's retry (the sweeper's, after the
    lease) for longer than the lease: the chaos test's retries spun on it for five minutes."""
    from conferencing import sync

    settings.CALSYNC_PROCESSING_LEASE = 7
    timeouts = []
    real_add = sync.cache.add
    monkeypatch.setattr(
        sync.cache, "add", lambda key, value, timeout: timeouts.append(timeout) or real_add(key, value, timeout)
    )
    with event_lock("https://api.calendly.com/scheduled_events/lease-test"):
        pass
    assert timeouts == [7]


# --- time passing -------------------------------------------------------------------------------------


def test_a_booking_that_arrives_after_its_meeting_ended_gets_no_meeting(rsps, test_clock):
    """The clock is moved past the fixture's meeting (2026-11-27 10:00–10:30 UTC): nothing is created."""
    test_clock.move_to(datetime(2026, 11, 27, 10, 31, tzinfo=UTC))
    warm_caches()  # a token fetched just now, not three days ago
    event = deliver(old_booking_created())
    assert event.status == "done"
    assert step_detail(event) == "booking is already over; no meeting created"
    assert not ZoomMeeting.objects.exists() and len(rsps.calls) == 0


def test_the_same_booking_a_minute_before_its_end_still_gets_its_meeting(rsps, test_clock):
    test_clock.move_to(datetime(2026, 11, 27, 10, 29, tzinfo=UTC))
    warm_caches()  # a token fetched just now, not three days ago
    expect_create(rsps, json=CREATED)
    assert deliver(old_booking_created()).status == "done"
    assert ZoomMeeting.objects.get().meeting_id == MEETING_ID


@pytest.mark.parametrize("location_type", ["zoom_conference", "zoom", "google_conference"])
def test_a_calendly_conference_that_failed_gets_a_meeting_of_ours(rsps, location_type):
    # Calendly's spec lists `failed` among a conference's statuses: no join link will ever come.
    warm_caches()
    expect_create(rsps, json=CREATED)
    data = custom_location(load_json("calendly/invitee_created.json"))
    data["payload"]["scheduled_event"]["location"] = {
        "type": location_type,
        "status": "failed",
        "join_url": None,
        "data": None,
    }
    event = deliver(data)
    assert event.status == "done", event.last_error
    assert step_detail(event) == f"created meeting {MEETING_ID}"
    booking = Booking.objects.get()
    assert not booking.calendly_owns_conference and booking.calendly_conference_failed
    assert booking.conference_join_url == CREATED["join_url"]


def test_a_calendly_conference_still_processing_is_waited_for(rsps):
    data = copy.deepcopy(load_json("calendly/invitee_created.json"))
    data["payload"]["scheduled_event"]["location"] = {
        "type": "zoom_conference",
        "status": "processing",
        "join_url": None,
    }
    event = deliver(data)
    assert step_detail(event) == "no Zoom meeting: Calendly provides the conference (zoom_conference)"


# --- the host's daily create/update cap (Zoom error code 300) -----------------------------------------

DAILY_CAP = {"code": 300, "message": "A maximum of 100 meetings can be created/updated for a single user in one day."}


@pytest.mark.parametrize("status", [400, 429])
def test_daily_cap_code_300_defers_to_the_reset_and_keeps_the_in_flight_row(rsps, status):
    warm_caches()
    expect_create(rsps, status=status, json=DAILY_CAP)
    event = deliver(custom_location(load_json("calendly/invitee_created.json")))
    assert event.status == "failed" and "daily create/update limit" in event.last_error
    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    assert abs((event.next_attempt_at - midnight).total_seconds()) < 5  # the reset, not a 1-minute backoff
    assert ZoomMeeting.objects.get().status == "creating"  # kept, not deleted
    assert len(rsps.calls) == 1


def test_a_booking_near_its_start_without_a_meeting_raises_an_alert(rsps, test_clock):
    from calsync.models import Alert
    from ops import alerts

    warm_caches()
    expect_create(rsps, status=400, json=DAILY_CAP)
    deliver(custom_location(load_json("calendly/invitee_created.json")))
    booking = Booking.objects.get()
    assert alerts.collect_alerts() == 0  # the meeting is a week away: nothing to do yet
    test_clock.move_to(booking.start_at - timedelta(hours=3))
    assert alerts.collect_alerts() == 1
    alert = Alert.objects.get(kind="zoom_meeting_missing")
    assert f"booking #{booking.pk}" in alert.summary and "no Zoom meeting" in alert.summary
    assert alerts.collect_alerts() == 0  # raised once


def test_daily_cap_alert_names_the_limit_while_it_lasts(rsps, test_clock):
    from calsync.models import Alert
    from ops import alerts

    test_clock.move_to(datetime(2026, 12, 2, 9, tzinfo=UTC))  # the meeting is at 15:00 the same day
    warm_caches()
    expect_create(rsps, status=429, json=DAILY_CAP)
    deliver(custom_location(load_json("calendly/invitee_created.json")))
    test_clock.shift(timedelta(hours=3))
    alerts.collect_alerts()
    summary = Alert.objects.get(kind="zoom_meeting_missing").summary
    assert f"daily create/update limit for host {ZOOM_USER} is reached until 2026-12-03 00:00 UTC" in summary


LONG_EVENT_URI = "https://api.calendly.com/scheduled_events/" + "E" * 400


def test_a_long_event_uri_still_locks_on_the_database_cache():
    """PostgreSQL's database cache refuses keys over 255 characters: `add` then answers False forever."""
    import warnings

    from django.core.cache import caches
    from django.core.cache.backends.base import CacheKeyWarning
    from django.core.cache.backends.db import DatabaseCache

    from calsync.errors import SyncError

    assert isinstance(caches["default"], DatabaseCache)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)  # a key too long for the cache is a failure here
        with event_lock(LONG_EVENT_URI):
            with pytest.raises(SyncError, match="another worker"):
                with event_lock(LONG_EVENT_URI):
                    pass
        with event_lock(LONG_EVENT_URI):  # released, so free again
            pass
        with event_lock(LONG_EVENT_URI[:-1] + "F"):  # a different event is a different lock
            pass
