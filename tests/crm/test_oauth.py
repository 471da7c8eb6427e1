"""Kommo OAuth 2.0: the admin's connect flow, refresh before expiry, rotation under concurrency, refusal."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.contrib.auth.models import Permission, User
from django.db import connection, connections
from django.utils import timezone
from responses import matchers

from calsync.errors import SyncError
from calsync.models import Alert
from crm import oauth
from crm.client import kommo_client
from crm.errors import KommoReconnectNeeded, KommoServerError
from crm.kommo import KommoAuthError, StaticToken
from crm.models import KommoConnection
from crm.tasks import keep_kommo_oauth_fresh
from tests.crm.conftest import BASE, TOKEN, kommo

pytestmark = pytest.mark.django_db

CLIENT_ID = "5f1d8c2e-7a4b-4c3d-9e1f-2a6b8c0d4e7f"
CLIENT_SECRET = "kommo-client-secret-never-shown-9Qx"
REDIRECT_URI = "https://calsync.example.com/admin/crm/kommoconnection/callback/"
TOKEN_URL = f"{BASE}/oauth2/access_token"
TOKENS = kommo("oauth_token.json")
OLD_ACCESS, OLD_REFRESH = "old-access-jwt-5c1e", "def50200-old-refresh-token-77aa"
PAGE = "/admin/crm/kommoconnection/"
LEAD = kommo("leads.json")["_embedded"]["leads"][0]


@pytest.fixture
def oauth_settings(settings):
    settings.KOMMO_CLIENT_ID = CLIENT_ID
    settings.KOMMO_CLIENT_SECRET = CLIENT_SECRET
    settings.KOMMO_REDIRECT_URI = REDIRECT_URI
    settings.KOMMO_OAUTH_URL = "https://www.kommo.com/oauth"
    settings.KOMMO_OAUTH_REFRESH_MARGIN = 600
    settings.CALSYNC_PUBLIC_URL = "https://calsync.example.com"
    return settings


@pytest.fixture
def staff(client):
    user = User.objects.create_user("ops", "ops@acme-sales.example", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="connect_kommo"))
    client.force_login(user)
    return user


def make_connection(*, expires_in: float, state: str = KommoConnection.State.CONNECTED) -> KommoConnection:
    now = timezone.now()
    return KommoConnection.objects.create(
        base_url=BASE,
        client_id=CLIENT_ID,
        access_token=OLD_ACCESS,
        refresh_token=OLD_REFRESH,
        expires_at=now + timedelta(seconds=expires_in),
        refresh_expires_at=now + timedelta(days=80),
        state=state,
        connected_at=now - timedelta(days=10),
    )


def refresh_body(refresh_token: str = OLD_REFRESH) -> dict:
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "redirect_uri": REDIRECT_URI,
    }


def expect_refresh(rsps, *, refresh_token: str = OLD_REFRESH, **kwargs) -> None:
    kwargs.setdefault("json", TOKENS)
    rsps.add(responses.POST, TOKEN_URL, match=[matchers.json_params_matcher(refresh_body(refresh_token))], **kwargs)


def expect_lead(rsps, token: str, **kwargs) -> None:
    kwargs.setdefault("json", LEAD)
    rsps.add(
        responses.GET,
        f"{BASE}/api/v4/leads/{LEAD['id']}",
        match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})],
        **kwargs,
    )


def start_connect(client) -> str:
    response = client.post(f"{PAGE}connect/")
    assert response.status_code == 302
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


# --- the connect flow --------------------------------------------------------------------------------


def test_connect_redirects_to_kommo_with_a_state_bound_to_the_session(client, staff, oauth_settings):
    response = client.post(f"{PAGE}connect/")
    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://www.kommo.com/oauth"
    query = parse_qs(url.query)
    assert query["client_id"] == [CLIENT_ID] and query["mode"] == ["post_message"]
    assert len(query["state"][0]) >= 32
    assert client.session["crm_kommo_oauth_state"]["state"] == query["state"][0]
    assert client.get(f"{PAGE}connect/").status_code == 405  # a GET never starts a flow


def test_the_page_needs_the_dedicated_permission(client, oauth_settings):
    user = User.objects.create_user("clerk", "clerk@acme-sales.example", "pw", is_staff=True)
    client.force_login(user)
    assert client.get(PAGE).status_code == 403
    assert client.post(f"{PAGE}connect/").status_code == 403
    assert client.get(f"{PAGE}callback/", {"state": "x", "code": "y"}).status_code == 403
    assert "Kommo connection" not in client.get("/admin/").content.decode()


def test_callback_with_a_foreign_state_is_refused_without_calling_kommo(client, staff, oauth_settings, rsps):
    start_connect(client)
    response = client.get(f"{PAGE}callback/", {"code": "c0de", "state": "not-ours", "referer": "acme.kommo.com"})
    assert response.status_code == 400 and "state mismatch" in response.content.decode()
    # The state was single-use: even the right one no longer works after a refused attempt.
    response = client.get(f"{PAGE}callback/", {"code": "c0de", "state": "anything", "referer": "acme.kommo.com"})
    assert response.status_code == 400
    assert len(rsps.calls) == 0 and not KommoConnection.objects.exists()


def test_callback_exchanges_the_code_and_stores_the_tokens(client, staff, oauth_settings, rsps):
    state = start_connect(client)
    code = "def502004f9a1b2c3d4e5f60718293a4b5c6d7e8f9"
    rsps.add(
        responses.POST,
        TOKEN_URL,
        json=TOKENS,
        match=[
            matchers.json_params_matcher(
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                }
            )
        ],
    )
    query = {"code": code, "state": state, "referer": "acme.kommo.com", "client_id": CLIENT_ID}
    response = client.get(f"{PAGE}callback/", query, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Connected to acme.kommo.com until" in page
    for secret in (TOKENS["access_token"], TOKENS["refresh_token"], CLIENT_SECRET, code):
        assert secret not in page
    row = KommoConnection.objects.get()
    assert (row.base_url, row.access_token, row.refresh_token) == (
        BASE,
        TOKENS["access_token"],
        TOKENS["refresh_token"],
    )
    assert row.connected_by == staff and row.state == "connected"
    assert timedelta(hours=23) < row.expires_at - timezone.now() <= timedelta(hours=24)
    for text in (str(row), repr(row)):
        assert TOKENS["access_token"] not in text and TOKENS["refresh_token"] not in text
    # The same answer replayed: the state is spent.
    assert client.get(f"{PAGE}callback/", query).status_code == 400
    assert len(rsps.calls) == 1


def test_callback_refuses_an_account_outside_kommo(client, staff, oauth_settings, rsps):
    oauth_settings.KOMMO_BASE_URL = ""
    state = start_connect(client)
    response = client.get(f"{PAGE}callback/", {"code": "c", "state": state, "referer": "evil.example"}, follow=True)
    assert "not a Kommo account address" in response.content.decode()
    oauth_settings.KOMMO_BASE_URL = BASE  # the configured account must be the one Kommo names
    state = start_connect(client)
    response = client.get(f"{PAGE}callback/", {"code": "c", "state": state, "referer": "other.kommo.com"}, follow=True)
    assert "but KOMMO_BASE_URL is" in response.content.decode()
    assert len(rsps.calls) == 0 and not KommoConnection.objects.exists()  # the secret went nowhere


def test_declined_consent_changes_nothing(client, staff, oauth_settings, rsps):
    state = start_connect(client)
    response = client.get(f"{PAGE}callback/", {"error": "access_denied", "state": state}, follow=True)
    assert "not granted" in response.content.decode() and not KommoConnection.objects.exists()


def test_disconnect_returns_to_the_long_lived_token(client, staff, oauth_settings):
    make_connection(expires_in=86400)
    assert oauth.kommo_credentials()[1].hint == oauth.RECONNECT_HINT
    client.post(f"{PAGE}disconnect/")
    assert not KommoConnection.objects.exists()
    base_url, tokens = oauth.kommo_credentials()
    assert base_url == BASE and isinstance(tokens, StaticToken) and tokens.access_token() == TOKEN


def test_long_lived_token_is_used_until_oauth_is_configured_and_connected(oauth_settings):
    assert isinstance(oauth.kommo_credentials()[1], StaticToken)  # configured, not connected
    make_connection(expires_in=86400)
    oauth_settings.KOMMO_CLIENT_SECRET = ""
    assert isinstance(oauth.kommo_credentials()[1], StaticToken)  # connected, no longer configured
    oauth_settings.KOMMO_CLIENT_SECRET = CLIENT_SECRET
    assert oauth.kommo_credentials()[1].access_token() == OLD_ACCESS


# --- using and refreshing ----------------------------------------------------------------------------


def test_a_token_far_from_expiry_is_used_as_is(rsps, oauth_settings):
    make_connection(expires_in=3600)
    expect_lead(rsps, OLD_ACCESS)
    assert kommo_client().get_lead(LEAD["id"])["id"] == LEAD["id"]
    assert len(rsps.calls) == 1


def test_refresh_ten_minutes_before_expiry_saves_the_rotated_refresh_token(rsps, oauth_settings):
    make_connection(expires_in=540)  # inside the 600 s margin
    expect_refresh(rsps)
    expect_lead(rsps, TOKENS["access_token"])
    expect_lead(rsps, TOKENS["access_token"])
    client = kommo_client()
    client.get_lead(LEAD["id"])
    client.get_lead(LEAD["id"])  # no second refresh
    row = KommoConnection.objects.get()
    assert row.refresh_token == TOKENS["refresh_token"] and row.access_token == TOKENS["access_token"]
    assert row.refreshed_at is not None and row.expires_at > timezone.now() + timedelta(hours=23)
    assert len(rsps.calls) == 3


def test_the_next_refresh_spends_the_rotated_token(rsps, oauth_settings):
    make_connection(expires_in=0)
    expect_refresh(rsps)
    second = {**TOKENS, "access_token": "third-access", "refresh_token": "third-refresh"}
    expect_refresh(rsps, refresh_token=TOKENS["refresh_token"], json=second)
    provider = oauth.OAuthTokenProvider.from_settings()
    assert provider.access_token() == TOKENS["access_token"]
    KommoConnection.objects.update(expires_at=timezone.now())
    assert provider.access_token() == "third-access"
    assert KommoConnection.objects.get().refresh_token == "third-refresh"


def test_a_refresher_that_waited_for_the_lock_reuses_the_fresh_token(rsps, oauth_settings):
    """Sequential variant (every database): B read the expiring token, then waited while A refreshed."""
    make_connection(expires_in=60)
    expect_refresh(rsps)  # exactly once
    a, b = oauth.OAuthTokenProvider.from_settings(), oauth.OAuthTokenProvider.from_settings()
    stale = KommoConnection.objects.get().access_token  # what B saw before taking the lock
    assert a.access_token() == TOKENS["access_token"]
    assert b._refresh(stale=stale) == TOKENS["access_token"]  # B, once it holds the lock
    assert b.rejected(stale) == TOKENS["access_token"]  # a 401 on the old token: no second refresh either
    assert len(rsps.calls) == 1
    assert KommoConnection.objects.get().refresh_token == TOKENS["refresh_token"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshers_spend_the_refresh_token_once(oauth_settings):
    """Two threads, two connections: B blocks on A's row lock and then uses A's token (PostgreSQL)."""
    if connection.vendor != "postgresql":
        # SQLite's shared in-memory test database answers "table is locked" instead of waiting; there
        # the IMMEDIATE transaction serializes refreshers, and the sequential variant above covers the logic.
        pytest.skip("needs PostgreSQL row locks for two real concurrent refreshers")
    make_connection(expires_in=60)
    inside, release = threading.Event(), threading.Event()
    bodies: list[dict] = []
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def token_endpoint(request):
        bodies.append(json.loads(request.body))
        inside.set()
        release.wait(10)  # A holds the row lock until the test lets Kommo answer
        return 200, {}, json.dumps(TOKENS)

    def refresher(name: str) -> None:
        try:
            provider = oauth.OAuthTokenProvider.from_settings(session=requests.Session())
            results[name] = provider.access_token()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def lock_waiters() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return cursor.fetchone()[0]

    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=token_endpoint)
        first = threading.Thread(target=refresher, args=("a",))
        first.start()
        assert inside.wait(10)
        second = threading.Thread(target=refresher, args=("b",))
        second.start()
        for _ in range(1000):  # until B is queued behind A's lock
            if lock_waiters():
                break
            threading.Event().wait(0.01)
        assert lock_waiters() == 1
        release.set()
        first.join(10)
        second.join(10)
    assert not errors, errors
    assert bodies == [refresh_body()]
    assert results == {"a": TOKENS["access_token"], "b": TOKENS["access_token"]}
    assert KommoConnection.objects.get().refresh_token == TOKENS["refresh_token"]


def test_a_401_refreshes_once_and_retries(rsps, oauth_settings):
    make_connection(expires_in=3600)
    expect_lead(rsps, OLD_ACCESS, status=401, json=kommo("error_401.json"))
    expect_refresh(rsps)
    expect_lead(rsps, TOKENS["access_token"])
    assert kommo_client().get_lead(LEAD["id"])["id"] == LEAD["id"]
    assert len(rsps.calls) == 3


def test_a_long_lived_token_401_is_not_retried(rsps):
    expect_lead(rsps, TOKEN, status=401, json=kommo("error_401.json"))
    with pytest.raises(KommoAuthError, match="check KOMMO_ACCESS_TOKEN"):
        kommo_client().get_lead(LEAD["id"])
    assert len(rsps.calls) == 1


def test_refused_refresh_alerts_once_fails_permanently_and_stops_asking(rsps, oauth_settings, caplog):
    make_connection(expires_in=60)
    expect_refresh(rsps, status=400, json=kommo("oauth_invalid_grant.json"))
    client = kommo_client()
    with pytest.raises(KommoReconnectNeeded) as caught:
        client.get_lead(LEAD["id"])
    assert not caught.value.retryable and "reconnect Kommo in the admin" in str(caught.value)
    row = KommoConnection.objects.get()
    assert row.state == "reconnect" and "Token has been revoked" in row.last_error
    alert = Alert.objects.get()
    assert alert.kind == "kommo_disconnected" and "/admin/crm/kommoconnection/" in alert.summary
    # Every later call fails at once: no refresh storm, no second alert, until someone reconnects.
    for _ in range(3):
        with pytest.raises(KommoReconnectNeeded):
            kommo_client().get_lead(LEAD["id"])
    assert keep_kommo_oauth_fresh().startswith("Kommo's OAuth connection is broken")
    assert len(rsps.calls) == 1 and Alert.objects.count() == 1
    for secret in (OLD_REFRESH, OLD_ACCESS, CLIENT_SECRET):
        assert secret not in caplog.text and secret not in row.last_error and secret not in alert.summary
    # Reconnecting clears it.
    rsps.add(responses.POST, TOKEN_URL, json=TOKENS)
    oauth.connect("new-code", "acme.kommo.com")
    expect_lead(rsps, TOKENS["access_token"])
    assert kommo_client().get_lead(LEAD["id"])["id"] == LEAD["id"]


def test_a_network_error_during_refresh_keeps_the_old_refresh_token(rsps, oauth_settings):
    make_connection(expires_in=60)
    rsps.add(responses.POST, TOKEN_URL, body=requests.ConnectionError("reset"))
    with pytest.raises(KommoServerError) as caught:
        oauth.OAuthTokenProvider.from_settings().access_token()
    assert caught.value.retryable and isinstance(caught.value, SyncError)
    row = KommoConnection.objects.get()
    assert (row.state, row.refresh_token) == ("connected", OLD_REFRESH)  # Kommo: still valid, resend it later


def test_keep_fresh_schedule_refreshes_only_when_due(rsps, oauth_settings):
    assert keep_kommo_oauth_fresh() == "Kommo OAuth not connected"
    make_connection(expires_in=7200)
    assert keep_kommo_oauth_fresh().startswith("still valid")
    KommoConnection.objects.update(expires_at=timezone.now() + timedelta(seconds=300))
    expect_refresh(rsps)
    assert keep_kommo_oauth_fresh().startswith("refreshed")
    assert len(rsps.calls) == 1


def test_sync_counts_an_oauth_connection_as_configured(oauth_settings):
    from crm.sync import is_configured

    oauth_settings.KOMMO_ACCESS_TOKEN = ""
    assert not is_configured()
    make_connection(expires_in=3600)
    assert is_configured()


def test_the_page_says_what_is_in_use_and_when_the_connection_is_broken(client, staff, oauth_settings):
    page = client.get(PAGE).content.decode()
    assert "the long-lived token (KOMMO_ACCESS_TOKEN)" in page and "Connect Kommo" in page
    make_connection(expires_in=3600, state=KommoConnection.State.RECONNECT)
    KommoConnection.objects.update(last_error="Kommo token request (refresh_token): HTTP 400 Token has been revoked")
    page = client.get(PAGE).content.decode()
    assert "OAuth connection to acme.kommo.com" in page and "is broken" in page and "Reconnect Kommo" in page
    assert OLD_ACCESS not in page and OLD_REFRESH not in page
    # The default change page never shows the row either: it leads back here.
    assert client.get(f"{PAGE}kommo/change/").status_code in (302, 404)


def test_half_configured_oauth_is_a_startup_warning(oauth_settings):
    from crm.checks import check_kommo_settings

    oauth_settings.KOMMO_REDIRECT_URI = ""
    assert "crm.W003" in [p.id for p in check_kommo_settings(None)]
