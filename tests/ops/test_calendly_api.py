"""CalendlyClient at the wire level: pagination, 409, rate limits, retries, typed errors, call counting."""

import json
from datetime import UTC, datetime

import pytest
import requests
from responses import matchers

from bookings.calendly_api import (
    CalendlyAuthError,
    CalendlyClient,
    CalendlyRateLimited,
    CalendlyRequestError,
    CalendlyUnavailable,
    SubscriptionExists,
)
from calsync.http import build_session
from calsync.models import ApiCallCount
from tests.ops.api import API, HOOK_URL, ME, ORG, SUB_URI, api_json, page
from tests.ops.conftest import TOKEN, Sleeps

pytestmark = pytest.mark.django_db
KINDS = ("invitee.created", "invitee.canceled")


def make_client(**kw) -> tuple[CalendlyClient, Sleeps]:
    sleeps = Sleeps()
    kw.setdefault("max_requests_per_minute", 0)
    return CalendlyClient(API, TOKEN, build_session(), sleep=sleeps, **kw), sleeps


def test_current_user_and_bearer_token(rsps):
    rsps.get(f"{API}/users/me", json=api_json("users_me.json"))
    client, _ = make_client()
    me = client.get_current_user()
    assert me["uri"] == ME and me["current_organization"] == ORG
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_list_subscriptions_follows_next_page_until_null(rsps):
    first = rsps.get(
        f"{API}/webhook_subscriptions",
        json=api_json("webhook_subscriptions_page1.json"),
        match=[matchers.query_param_matcher({"organization": ORG, "scope": "organization", "count": "100"})],
    )
    rsps.get(
        f"{API}/webhook_subscriptions",
        json=api_json("webhook_subscriptions_page2.json"),
        match=[matchers.query_param_matcher({"page_token": "sNjq4TvMDfUHEl7zHRR0k0E1PCEJWvdi"}, strict_match=False)],
    )
    client, _ = make_client()
    subs = client.list_webhook_subscriptions(organization=ORG, scope="organization")
    assert [s["callback_url"] for s in subs] == ["https://other-tool.example.net/hooks/calendly", HOOK_URL]
    assert first.call_count == 1 and len(rsps.calls) == 2


def test_user_scope_lists_with_the_user(rsps):
    rsps.get(
        f"{API}/webhook_subscriptions",
        json=page([]),
        match=[matchers.query_param_matcher({"scope": "user", "user": ME}, strict_match=False)],
    )
    client, _ = make_client()
    assert client.list_webhook_subscriptions(organization=ORG, scope="user", user=ME) == []


def test_create_subscription_sends_the_documented_body(rsps):
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("webhook_subscription_created.json"), status=201)
    client, _ = make_client()
    sub = client.create_webhook_subscription(
        url=HOOK_URL, organization=ORG, scope="organization", signing_key="k1", events=KINDS
    )
    assert sub["uri"] == SUB_URI and sub["state"] == "active"
    assert json.loads(rsps.calls[0].request.body) == {
        "url": HOOK_URL,
        "events": list(KINDS),
        "organization": ORG,
        "scope": "organization",
        "signing_key": "k1",
    }


def test_409_surfaces_the_existing_subscription(rsps):
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("error_409_already_exists.json"), status=409)
    rsps.get(f"{API}/webhook_subscriptions", json=api_json("webhook_subscriptions_page1.json"))
    rsps.get(f"{API}/webhook_subscriptions", json=api_json("webhook_subscriptions_page2.json"))
    client, _ = make_client()
    with pytest.raises(SubscriptionExists) as caught:
        client.create_webhook_subscription(url=HOOK_URL, organization=ORG, scope="organization", events=KINDS)
    assert caught.value.existing["uri"] == SUB_URI
    assert not caught.value.retryable


def test_429_waits_for_retry_after_then_succeeds(rsps):
    rsps.get(f"{API}/users/me", json=api_json("error_429.json"), status=429, headers={"Retry-After": "7"})
    rsps.get(f"{API}/users/me", json=api_json("users_me.json"))
    client, sleeps = make_client()
    assert client.get_current_user()["uri"] == ME
    assert sleeps == [7.0]


def test_429_uses_x_ratelimit_reset_and_gives_up_with_a_typed_error(rsps):
    headers = {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "42"}
    for _ in range(3):
        rsps.post(f"{API}/webhook_subscriptions", json=api_json("error_429.json"), status=429, headers=headers)
    client, sleeps = make_client(rate_limit_retries=2)
    with pytest.raises(CalendlyRateLimited) as caught:
        client.create_webhook_subscription(url=HOOK_URL, organization=ORG, scope="organization", events=KINDS)
    assert sleeps == [42.0, 42.0] and caught.value.retry_after == 42.0 and caught.value.retryable
    assert len(rsps.calls) == 3


def test_exhausted_window_waits_before_the_next_call(rsps):
    rsps.get(
        f"{API}/users/me",
        json=api_json("users_me.json"),
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"},
    )
    rsps.get(f"{API}/users/me", json=api_json("users_me.json"))
    now = [1000.0]
    client, sleeps = make_client(clock=lambda: now[0])
    client.get_current_user()
    client.get_current_user()
    assert sleeps == [30.0]


def test_requests_are_spaced_to_stay_under_the_per_minute_limit(rsps):
    for _ in range(3):
        rsps.get(f"{API}/users/me", json=api_json("users_me.json"))
    client, sleeps = make_client(max_requests_per_minute=500, clock=lambda: 50.0)
    for _ in range(3):
        client.get_current_user()
    assert sleeps == pytest.approx([0.12, 0.24])  # a frozen clock: each call waits its turn


def test_reads_are_retried_on_5xx_and_timeouts_with_backoff(rsps):
    rsps.get(f"{API}/users/me", status=502, body="Bad gateway")
    rsps.get(f"{API}/users/me", body=requests.ConnectTimeout("connect timed out"))
    rsps.get(f"{API}/users/me", json=api_json("users_me.json"))
    client, sleeps = make_client()
    assert client.get_current_user()["uri"] == ME
    assert sleeps == [1.0, 2.0]


def test_reads_give_up_after_the_retries(rsps):
    for _ in range(4):
        rsps.get(f"{API}/users/me", status=503, json={"title": "Service Unavailable", "message": "try later"})
    client, sleeps = make_client()
    with pytest.raises(CalendlyUnavailable) as caught:
        client.get_current_user()
    assert caught.value.status == 503 and caught.value.retryable and sleeps == [1.0, 2.0, 4.0]


def test_writes_are_not_retried_on_5xx(rsps):
    rsps.post(f"{API}/webhook_subscriptions", status=500, json={"title": "Internal Server Error"})
    client, sleeps = make_client()
    with pytest.raises(CalendlyUnavailable):
        client.create_webhook_subscription(url=HOOK_URL, organization=ORG, scope="organization", events=KINDS)
    assert len(rsps.calls) == 1 and sleeps == []


def test_bad_token_is_permanent_and_never_echoed(rsps):
    rsps.get(f"{API}/users/me", status=401, json=api_json("error_401.json"))
    client, _ = make_client()
    with pytest.raises(CalendlyAuthError) as caught:
        client.get_current_user()
    assert not caught.value.retryable and TOKEN not in str(caught.value)
    assert "401" in str(caught.value) and "Unauthenticated" in str(caught.value)


def test_400_names_the_parameter(rsps):
    rsps.get(
        f"{API}/webhook_subscriptions",
        status=400,
        json={
            "title": "Invalid Argument",
            "message": "The supplied parameters are invalid.",
            "details": [{"parameter": "user", "message": "is missing"}],
        },
    )
    client, _ = make_client()
    with pytest.raises(CalendlyRequestError, match=r"user: is missing"):
        client.list_webhook_subscriptions(organization=ORG, scope="user")


def test_a_page_link_to_another_host_is_never_followed(rsps):
    # Only the token is taken from a page; the next request goes to the configured API, filters intact.
    rsps.get(
        f"{API}/scheduled_events",
        json=page([{"uri": "a"}], next_page="https://evil.example/steal?page_token=x"),
        match=[matchers.query_param_matcher({"organization": ORG, "status": "active"}, strict_match=False)],
    )
    rsps.get(
        f"{API}/scheduled_events",
        json=page([{"uri": "b"}]),
        match=[
            matchers.query_param_matcher(
                {"organization": ORG, "status": "active", "page_token": "x"}, strict_match=False
            )
        ],
    )
    client, _ = make_client()
    assert [e["uri"] for e in client.list_scheduled_events(organization=ORG, status="active")] == ["a", "b"]
    assert [c.request.url.split("?")[0] for c in rsps.calls] == [f"{API}/scheduled_events"] * 2
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in rsps.calls)


def test_pages_repeat_the_original_filters_with_the_page_token(rsps):
    # Calendly's published list examples give a next_page link that names only some filters.
    filters = {"organization": ORG, "status": "canceled", "min_start_time": "2026-12-01T00:00:00.000000Z"}
    rsps.get(
        f"{API}/scheduled_events",
        json={
            "collection": [{"uri": "a"}],
            "pagination": {
                "count": 1,
                "next_page": f"{API}/scheduled_events?count=1&page_token=sNjq4TvMDfUHEl7zHRR0k0E1PCEJWvdi",
                "next_page_token": "sNjq4TvMDfUHEl7zHRR0k0E1PCEJWvdi",
                "previous_page": None,
                "previous_page_token": None,
            },
        },
        match=[matchers.query_param_matcher(filters, strict_match=False)],
    )
    rsps.get(
        f"{API}/scheduled_events",
        json=page([{"uri": "b"}]),
        match=[
            matchers.query_param_matcher(
                {**filters, "page_token": "sNjq4TvMDfUHEl7zHRR0k0E1PCEJWvdi", "sort": "start_time:asc"},
                strict_match=False,
            )
        ],
    )
    client, _ = make_client()
    events = client.list_scheduled_events(
        organization=ORG, status="canceled", min_start_time=datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert [e["uri"] for e in events] == ["a", "b"]


def test_a_repeated_page_token_stops_instead_of_paging_forever(rsps):
    rsps.get(f"{API}/scheduled_events", json=page([{"uri": "a"}], next_page=f"{API}/scheduled_events?page_token=x"))
    client, _ = make_client()
    with pytest.raises(CalendlyUnavailable, match="repeated"):
        list(client.list_scheduled_events(organization=ORG))


def test_scheduled_events_window_filters_and_pages(rsps):
    since = datetime(2026, 12, 1, tzinfo=UTC)
    until = datetime(2027, 1, 1, 12, 30, tzinfo=UTC)
    rsps.get(
        f"{API}/scheduled_events",
        json=page([{"uri": f"{API}/scheduled_events/a"}], next_page=f"{API}/scheduled_events?page_token=p2"),
        match=[
            matchers.query_param_matcher(
                {
                    "organization": ORG,
                    "min_start_time": "2026-12-01T00:00:00.000000Z",
                    "max_start_time": "2027-01-01T12:30:00.000000Z",
                    "status": "canceled",
                    "count": "100",
                    "sort": "start_time:asc",
                }
            )
        ],
    )
    rsps.get(f"{API}/scheduled_events", json=page([{"uri": f"{API}/scheduled_events/b"}]))
    client, _ = make_client()
    events = client.list_scheduled_events(
        organization=ORG, min_start_time=since, max_start_time=until, status="canceled"
    )
    assert [e["uri"].rsplit("/", 1)[-1] for e in events] == ["a", "b"]


def test_invitees_and_single_event_by_uri(rsps):
    event_uri = f"{API}/scheduled_events/8c2f7e0a-5b1d-4e3c-9a7f-1d2e3f4a5b6c"
    rsps.get(
        f"{event_uri}/invitees",
        json=page([{"uri": f"{event_uri}/invitees/x"}], next_page=f"{event_uri}/invitees?page_token=2"),
    )
    rsps.get(f"{event_uri}/invitees", json=page([{"uri": f"{event_uri}/invitees/y"}]))
    rsps.get(event_uri, json={"resource": {"uri": event_uri}})
    client, _ = make_client()
    assert [i["uri"][-1] for i in client.list_event_invitees(event_uri)] == ["x", "y"]
    assert client.get_scheduled_event(event_uri)["uri"] == event_uri


def test_delete_subscription_answers_204(rsps):
    rsps.delete(SUB_URI, status=204)
    client, _ = make_client()
    assert client.delete_webhook_subscription(SUB_URI) is None


def test_every_call_is_counted_for_metrics(rsps):
    rsps.get(f"{API}/users/me", status=502)
    rsps.get(f"{API}/users/me", json=api_json("users_me.json"))
    rsps.get(f"{API}/users/me", json=api_json("users_me.json"))
    client = CalendlyClient.from_settings()  # its session counts the calls
    client.sleep = Sleeps()
    client.get_current_user()
    client.get_current_user()
    counts = {(c.service, c.status): c.count for c in ApiCallCount.objects.all()}
    assert counts == {("calendly", "502"): 1, ("calendly", "200"): 2}
