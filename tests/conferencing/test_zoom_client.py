"""ZoomClient at the wire level: the shared token, renewals, retries, rate limits and typed errors."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from django.core.cache.backends.locmem import LocMemCache
from responses import matchers

from calsync.errors import PermanentSyncError, SyncError
from conferencing.zoom import (
    CachedToken,
    CacheTokenStore,
    ZoomAuthError,
    ZoomCreateOutcomeUnknown,
    ZoomDailyLimitReached,
    ZoomRateLimited,
    ZoomRequestRejected,
    ZoomUnavailable,
    zoom_time,
)
from tests.conferencing.conftest import API, BEARER, CLIENT_SECRET, OAUTH, TOKEN, add_token, make_client
from tests.conftest import load_json

pytestmark = pytest.mark.django_db

EMAIL = "marta.ruiz@acme-sales.example"
USER_URL = f"{API}/users/{EMAIL}"
MEETING_URL = f"{API}/meetings/84849729157"
OTHER_TOKEN = "eyJ0ZXN0Ijoic2Vjb25kIn0.second-token"


def add_user(rsps, token: str = TOKEN, **kwargs):
    rsps.add(
        responses.GET,
        USER_URL,
        json=load_json("zoom/user.json"),
        match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})],
        **kwargs,
    )


# --- token ------------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_shared_by_two_client_instances(rsps, clock):
    add_token(rsps)
    add_user(rsps)
    add_user(rsps)
    first, second = make_client(clock), make_client(clock)  # as two processes would: same shared cache
    assert first.get_user(EMAIL)["id"] == "z8yAAAAA8bbbQ"
    assert second.get_user(EMAIL)["id"] == "z8yAAAAA8bbbQ"
    assert [c.request.url for c in rsps.calls].count(OAUTH) == 1
    assert rsps.calls[0].request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_token_is_renewed_a_few_minutes_before_it_expires(rsps, clock):
    add_token(rsps)
    add_user(rsps)
    client = make_client(clock)
    client.get_user(EMAIL)
    clock.now += 3599 - 301  # still valid for 5 minutes and a second: reused
    client.get_user(EMAIL)
    assert len(rsps.calls) == 3
    clock.now += 2  # inside the renewal margin
    add_token(rsps, {**load_json("zoom/token.json"), "access_token": OTHER_TOKEN})
    add_user(rsps, token=OTHER_TOKEN)
    client.get_user(EMAIL)
    assert [c.request.url for c in rsps.calls].count(OAUTH) == 2


def test_code_124_renews_the_token_once_and_retries(rsps, clock):
    make_client(clock).token_store.save(CachedToken(TOKEN, clock.now + 3000))  # cached, but Zoom disowns it
    rsps.add(
        responses.GET,
        USER_URL,
        status=401,
        json=load_json("zoom/error_invalid_token.json"),
        match=[matchers.header_matcher(BEARER)],
    )
    add_token(rsps, {**load_json("zoom/token.json"), "access_token": OTHER_TOKEN})
    add_user(rsps, token=OTHER_TOKEN)
    assert make_client(clock).get_user(EMAIL)["email"] == EMAIL
    assert len(rsps.calls) == 3
    assert make_client(clock).token_store.get().access_token == OTHER_TOKEN  # shared with everyone


def test_code_124_twice_is_an_auth_error_not_a_loop(rsps, clock):
    add_token(rsps)
    rsps.add(responses.GET, USER_URL, status=401, json=load_json("zoom/error_invalid_token.json"))
    add_token(rsps, {**load_json("zoom/token.json"), "access_token": OTHER_TOKEN})
    with pytest.raises(ZoomAuthError) as err:
        make_client(clock).get_user(EMAIL)
    assert isinstance(err.value, PermanentSyncError) and err.value.code == 124
    assert len(rsps.calls) == 4  # token, 401, token, 401


def test_bad_credentials_are_permanent_and_the_secret_never_shows(rsps, clock, caplog):
    caplog.set_level(logging.DEBUG)
    rsps.add(responses.POST, OAUTH, status=400, json=load_json("zoom/token_invalid_client.json"))
    with pytest.raises(ZoomAuthError) as err:
        make_client(clock).get_user(EMAIL)
    assert not err.value.retryable
    assert "ZOOM_CLIENT_SECRET" in str(err.value) and CLIENT_SECRET not in str(err.value)
    assert CLIENT_SECRET not in caplog.text and CLIENT_SECRET not in repr(make_client(clock))


def test_a_renewal_in_progress_elsewhere_is_waited_for_not_repeated(rsps, clock):
    """Another process holds the renewal lock; we wait for its token instead of minting our own."""
    store = CacheTokenStore(make_client(clock).token_store.cache, "zoom:token:test", clock=clock)
    assert store.acquire_lock()  # the other process
    polls = []

    def other_process_finishes(seconds):
        polls.append(seconds)
        if len(polls) == 3:
            store.save(CachedToken(OTHER_TOKEN, clock.now + 3599))
            store.release_lock()

    client = make_client(clock)
    client.sleep = other_process_finishes
    add_user(rsps, token=OTHER_TOKEN)
    client.get_user(EMAIL)
    assert len(polls) == 3 and all(c.request.url != OAUTH for c in rsps.calls)


def test_concurrent_renewals_do_not_stampede(rsps, clock):
    """Eight workers find no token at the same moment: exactly one token request is made."""
    workers = 8
    waiting = threading.Semaphore(0)
    token_saved = threading.Event()

    class SignallingStore(CacheTokenStore):
        def save(self, token):
            super().save(token)
            token_saved.set()

    shared = LocMemCache("zoom-stampede", {})  # stands in for the cache every process shares

    def token_call(request):
        for _ in range(workers - 1):  # answer only once every other worker is waiting for this renewal
            assert waiting.acquire(timeout=5)
        return 200, {}, json.dumps(load_json("zoom/token.json"))

    rsps.add_callback(responses.POST, OAUTH, callback=token_call)
    for _ in range(workers):
        add_user(rsps)

    def wait_for_renewal(seconds):
        waiting.release()
        token_saved.wait(timeout=5)

    errors = []

    def work():
        client = make_client(clock, SignallingStore(shared, "zoom:token:test", clock=clock))
        client.sleep = wait_for_renewal
        try:
            client.get_user(EMAIL)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors
    assert [c.request.url for c in rsps.calls].count(OAUTH) == 1


# --- retries and rate limits ---------------------------------------------------------------------------


def test_429_with_retry_after_seconds_is_honoured_then_retried(rsps, clock):
    add_token(rsps)
    rsps.add(
        responses.GET,
        USER_URL,
        status=429,
        json=load_json("zoom/rate_limit_qps.json"),
        headers={"Retry-After": "2", "X-RateLimit-Type": "QPS"},
    )
    add_user(rsps)
    assert make_client(clock).get_user(EMAIL)
    assert clock.slept == [2.0] and len(rsps.calls) == 3


def test_429_asking_for_a_long_wait_goes_back_to_the_pipeline(rsps, clock):
    add_token(rsps)
    rsps.add(
        responses.GET, USER_URL, status=429, json=load_json("zoom/rate_limit_qps.json"), headers={"Retry-After": "120"}
    )
    with pytest.raises(ZoomRateLimited) as err:
        make_client(clock).get_user(EMAIL)
    assert err.value.retry_after == 120 and err.value.retryable and clock.slept == []


def test_daily_limit_with_iso_retry_after_is_reported_not_retried(rsps, clock):
    reset = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    add_token(rsps)
    rsps.add(
        responses.POST,
        f"{API}/users/z8yAAAAA8bbbQ/meetings",
        status=429,
        json=load_json("zoom/rate_limit_daily.json"),
        headers={"Retry-After": reset.strftime("%Y-%m-%dT%H:%M:%SZ"), "X-RateLimit-Type": "Daily-limit"},
    )
    with pytest.raises(ZoomDailyLimitReached) as err:
        make_client(clock).create_meeting("z8yAAAAA8bbbQ", {"topic": "x"})
    assert 5 * 3600 - 10 < err.value.retry_after <= 5 * 3600
    assert len(rsps.calls) == 2 and clock.slept == []


def test_daily_limit_without_headers_waits_until_utc_midnight(rsps, clock):
    add_token(rsps)
    rsps.add(responses.PATCH, MEETING_URL, status=429, json=load_json("zoom/rate_limit_daily.json"))
    with pytest.raises(ZoomDailyLimitReached) as err:
        make_client(clock).update_meeting(84849729157, {"duration": 45})
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(err.value.retry_after - (midnight - now).total_seconds()) < 5


DAILY_CAP = {"code": 300, "message": "A maximum of 100 meetings can be created/updated for a single user in one day."}


@pytest.mark.parametrize("status", [429, 400])
def test_code_300_daily_cap_is_a_daily_limit_whatever_the_status(rsps, clock, status):
    add_token(rsps)
    rsps.add(responses.POST, f"{API}/users/z8yAAAAA8bbbQ/meetings", status=status, json=DAILY_CAP)
    with pytest.raises(ZoomDailyLimitReached) as err:
        make_client(clock).create_meeting("z8yAAAAA8bbbQ", {"topic": "x"})
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(err.value.retry_after - (midnight - now).total_seconds()) < 5
    assert err.value.retryable and err.value.code == 300
    assert len(rsps.calls) == 2 and clock.slept == []  # no quick per-second retries


def test_code_300_on_an_update_is_the_daily_cap_too(rsps, clock):
    add_token(rsps)
    rsps.add(responses.PATCH, MEETING_URL, status=400, json=DAILY_CAP)
    with pytest.raises(ZoomDailyLimitReached):
        make_client(clock).update_meeting(84849729157, {"duration": 45})


def test_code_300_with_field_errors_is_a_refused_request(rsps, clock):
    add_token(rsps)
    body = {"code": 300, "message": "Validation Failed.", "errors": [{"field": "topic", "message": "Invalid field."}]}
    rsps.add(responses.POST, f"{API}/users/z8yAAAAA8bbbQ/meetings", status=400, json=body)
    with pytest.raises(ZoomRequestRejected):
        make_client(clock).create_meeting("z8yAAAAA8bbbQ", {"topic": "x"})


@pytest.mark.parametrize("failure", [{"status": 502}, {"body": requests.ConnectTimeout()}])
def test_reads_updates_and_deletes_are_retried_with_backoff(rsps, clock, failure):
    add_token(rsps)
    rsps.add(responses.PATCH, MEETING_URL, **failure)
    rsps.add(responses.PATCH, MEETING_URL, **failure)
    rsps.add(responses.PATCH, MEETING_URL, status=204)
    make_client(clock).update_meeting(84849729157, {"duration": 45})
    assert clock.slept == [1.0, 3.0] and len(rsps.calls) == 4


def test_retries_give_up_after_three_tries(rsps, clock):
    add_token(rsps)
    for _ in range(3):
        rsps.add(responses.GET, MEETING_URL, status=503)
    with pytest.raises(ZoomUnavailable) as err:
        make_client(clock).get_meeting(84849729157)
    assert err.value.retryable and len(rsps.calls) == 4


@pytest.mark.parametrize("failure", [{"status": 500}, {"body": requests.ReadTimeout()}])
def test_a_create_is_never_resent_blindly(rsps, clock, failure):
    add_token(rsps)
    rsps.add(responses.POST, f"{API}/users/z8yAAAAA8bbbQ/meetings", **failure)
    with pytest.raises(ZoomCreateOutcomeUnknown) as err:
        make_client(clock).create_meeting("z8yAAAAA8bbbQ", {"topic": "x"})
    assert isinstance(err.value, SyncError) and err.value.retryable
    assert len(rsps.calls) == 2 and clock.slept == []


# --- endpoints ---------------------------------------------------------------------------------------


def test_unknown_user_is_none(rsps, clock):
    add_token(rsps)
    rsps.add(
        responses.GET,
        f"{API}/users/nobody@acme-sales.example",
        status=404,
        json=load_json("zoom/error_user_not_found.json"),
    )
    assert make_client(clock).get_user("nobody@acme-sales.example") is None


def test_delete_204_and_already_gone(rsps, clock):
    add_token(rsps)
    gone = matchers.query_param_matcher({"schedule_for_reminder": "false"})
    rsps.add(responses.DELETE, MEETING_URL, status=204, match=[gone, matchers.header_matcher(BEARER)])
    rsps.add(responses.DELETE, MEETING_URL, status=404, json=load_json("zoom/error_meeting_not_found.json"))
    client = make_client(clock)
    assert client.delete_meeting(84849729157) is True
    assert client.delete_meeting("84849729157") is False  # 404/3001: already gone, not an error


def test_get_meeting_and_eleven_digit_ids(rsps, clock):
    add_token(rsps)
    rsps.add(responses.GET, MEETING_URL, json=load_json("zoom/meeting.json"))
    assert make_client(clock).get_meeting(84849729157)["id"] == 84849729157


def test_upcoming_meetings_are_read_page_by_page(rsps, clock):
    add_token(rsps)
    url = f"{API}/users/z8yAAAAA8bbbQ/meetings"
    rsps.add(
        responses.GET,
        url,
        json=load_json("zoom/meetings_upcoming_page1.json"),
        match=[matchers.query_param_matcher({"type": "upcoming", "page_size": "300"})],
    )
    rsps.add(
        responses.GET,
        url,
        json=load_json("zoom/meetings_upcoming_page2.json"),
        match=[
            matchers.query_param_matcher(
                {"type": "upcoming", "page_size": "300", "next_page_token": "Tva2CuIdTgsv8wAnhyAdU3m06Y2HuLQtlh3"}
            )
        ],
    )
    ids = [m["id"] for m in make_client(clock).list_upcoming_meetings("z8yAAAAA8bbbQ")]
    assert ids == [81234567890, 84849729157]


def test_start_time_is_utc_with_z():
    berlin = datetime(2026, 12, 1, 17, 0, 30, 123456, tzinfo=UTC).astimezone()
    assert zoom_time(berlin) == "2026-12-01T17:00:30Z"
