"""Zoom test helpers: a client on the shared cache, a fake clock and sleeper, response helpers."""

from __future__ import annotations

import base64

import pytest
import responses
from django.core.cache import cache
from responses import matchers

from conferencing.zoom import CacheTokenStore, ZoomClient
from tests.conftest import load_json

API = "https://api.zoom.us/v2"
OAUTH = "https://zoom.us/oauth/token"
ACCOUNT_ID = "Wk9PTV9BQ0NPVU5UX0lE"
CLIENT_ID = "aBcDeFgHiJkLmNoPqRsT"
CLIENT_SECRET = "s3cr3t-Z00m-cl13nt-v4lu3-never-logged"
TOKEN = load_json("zoom/token.json")["access_token"]
BASIC = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(clock: FakeClock, store=None) -> ZoomClient:
    import requests

    return ZoomClient(
        api_url=API,
        oauth_url=OAUTH,
        account_id=ACCOUNT_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        session=requests.Session(),
        token_store=store or CacheTokenStore(cache, "zoom:token:test", clock=clock),
        sleep=clock.sleep,
        clock=clock,
    )


def add_token(rsps: responses.RequestsMock, body: dict | None = None, **kwargs) -> None:
    """The token call, checked as Zoom requires it: Basic auth and a form body (not the query string)."""
    rsps.add(
        responses.POST,
        OAUTH,
        json=body or load_json("zoom/token.json"),
        match=[
            matchers.urlencoded_params_matcher({"grant_type": "account_credentials", "account_id": ACCOUNT_ID}),
            matchers.header_matcher({"Authorization": f"Basic {BASIC}"}),
            matchers.query_string_matcher(""),
        ],
        **kwargs,
    )


@pytest.fixture
def zoom_settings(settings):
    settings.ZOOM_ACCOUNT_ID = ACCOUNT_ID
    settings.ZOOM_CLIENT_ID = CLIENT_ID
    settings.ZOOM_CLIENT_SECRET = CLIENT_SECRET
    settings.ZOOM_API_URL = API
    settings.ZOOM_OAUTH_URL = OAUTH
    settings.ZOOM_DEFAULT_USER = "calsync-rooms@acme-sales.example"
    settings.ZOOM_EVENT_TYPES = []
    settings.CALSYNC_RECONCILERS = ["conferencing.sync.reconcile"]
    return settings
