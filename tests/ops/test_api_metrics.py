"""Every Kommo and Zoom HTTP call is counted for /metrics by the session the client is given."""

from __future__ import annotations

import pytest
import requests
import responses
from django.core.cache import cache

from calsync.http import build_session
from calsync.models import ApiCallCount
from conferencing.zoom import ZoomClient
from crm.client import kommo_client
from crm.kommo import KommoServerError
from tests.conftest import load_json

pytestmark = pytest.mark.django_db

KOMMO = "https://acme.kommo.com"
ZOOM_API = "https://api.zoom.us/v2"


def counts() -> dict[tuple[str, str], int]:
    return {(c.service, c.status): c.count for c in ApiCallCount.objects.all()}


@pytest.fixture(autouse=True)
def configured(settings):
    settings.KOMMO_BASE_URL = KOMMO
    settings.KOMMO_ACCESS_TOKEN = "kommo-metrics-token-3d9f"
    settings.ZOOM_ACCOUNT_ID, settings.ZOOM_CLIENT_ID, settings.ZOOM_CLIENT_SECRET = "acct", "cid", "zoom-secret-77"
    settings.ZOOM_API_URL, settings.ZOOM_OAUTH_URL = ZOOM_API, "https://zoom.us/oauth/token"
    cache.clear()


def test_kommo_calls_are_counted_by_status_including_retries_and_timeouts(rsps):
    lead = load_json("kommo/leads.json")["_embedded"]["leads"][0]
    url = f"{KOMMO}/api/v4/leads/{lead['id']}"
    rsps.add(responses.GET, url, status=502, json=load_json("kommo/error_500.json"))
    rsps.add(responses.GET, url, json=lead)
    rsps.add(responses.GET, url, body=requests.ReadTimeout("slow"))
    rsps.add(responses.GET, url, body=requests.ConnectionError("reset"))
    client = kommo_client(sleep=lambda s: None, read_backoff=(0.0,))
    assert client.get_lead(lead["id"])["id"] == lead["id"]  # a 502, then a 200
    with pytest.raises(KommoServerError):
        client.get_lead(lead["id"])  # a timeout, then a dropped connection
    assert counts() == {("kommo", "502"): 1, ("kommo", "200"): 1, ("kommo", "timeout"): 1, ("kommo", "error"): 1}


def test_zoom_calls_are_counted_token_request_included(rsps):
    rsps.add(responses.POST, "https://zoom.us/oauth/token", json=load_json("zoom/token.json"))
    rsps.add(responses.GET, f"{ZOOM_API}/meetings/84849729157", json=load_json("zoom/meeting.json"))
    rsps.add(responses.DELETE, f"{ZOOM_API}/meetings/84849729157", status=404, json={"code": 3001, "message": "x"})
    client = ZoomClient.from_settings()
    client.get_meeting(84849729157)
    assert client.delete_meeting(84849729157) is False
    assert counts() == {("zoom", "200"): 2, ("zoom", "404"): 1}


def test_a_session_without_a_service_counts_nothing(rsps):
    rsps.add(responses.GET, "https://example.com/", body="ok")
    build_session().get("https://example.com/")
    assert counts() == {}
