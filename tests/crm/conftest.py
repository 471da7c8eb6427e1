"""Kommo test helpers: settings pointing at a fake account, fixture-built bodies, and no real sleeping."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.cache import cache

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from crm.client import kommo_client
from crm.kommo import users_cache_key
from tests.conftest import load_fixture, load_json, to_body

BASE = "https://acme.kommo.com"
TOKEN = "kommo-test-token-never-logged-4f9a"
EMAIL = "lucia.fernandez@clientco.example"


@pytest.fixture(autouse=True)
def kommo_settings(settings):
    settings.KOMMO_BASE_URL = BASE
    settings.KOMMO_ACCESS_TOKEN = TOKEN
    settings.KOMMO_SEVERAL_DEALS_POLICY = "most_recent"
    settings.KOMMO_NO_DEAL_POLICY = "inbound_lead"
    settings.KOMMO_PIPELINE_IDS = []
    settings.CALSYNC_TIME_ZONE = "America/New_York"
    settings.CALSYNC_RECONCILERS = ["crm.sync.reconcile"]
    return settings


@pytest.fixture(autouse=True)
def sleeps(monkeypatch, test_clock):
    """Every client the pipeline builds sleeps into this list instead of really sleeping; the test's
    clock moves on by the time slept, as it would have (the rate limit looks again when it wakes)."""
    recorded: list[float] = []

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        if test_clock is not None:
            test_clock.shift(seconds)

    monkeypatch.setattr("crm.sync.default_client", lambda: kommo_client(sleep=sleep))
    return recorded


def kommo(name: str):
    return load_json(f"kommo/{name}")


def leads_body(*ids: int) -> dict:
    data = kommo("leads.json")
    data["_embedded"]["leads"] = [lead for lead in data["_embedded"]["leads"] if lead["id"] in ids]
    return data


def contacts_body(*lead_ids: int, email: str = "Lucia.Fernandez@ClientCo.example") -> dict:
    data = kommo("contacts_search.json")
    contact = data["_embedded"]["contacts"][0]
    contact["_embedded"]["leads"] = [{"id": i} for i in lead_ids]
    contact["custom_fields_values"][1]["values"][0]["value"] = email
    return data


def with_marker(name: str, marker: str, key: str) -> dict:
    """A notes/tasks list whose calsync item carries `marker` (the token of the booking under test)."""
    data = copy.deepcopy(kommo(name))
    for item in data["_embedded"][key]:
        if key == "notes":
            item["params"]["text"] = item["params"]["text"].replace("MARKER", marker)
        else:
            item["text"] = item["text"].replace("MARKER", marker)
    return data


def warm_users() -> None:
    cache.set(users_cache_key(BASE), kommo("users.json")["_embedded"]["users"], 3600)


def calendly(name: str, **changes) -> dict:
    data = load_json(f"calendly/{name}")
    data["payload"].update(changes)
    return data


def without_deal_id(name: str = "invitee_created.json") -> dict:
    data = load_json(f"calendly/{name}")
    data["payload"]["questions_and_answers"] = [
        qa for qa in data["payload"]["questions_and_answers"] if not qa["question"].startswith("Deal ID")
    ]
    return data


def deliver(body: dict | str) -> tuple[str, WebhookEvent]:
    """Store a delivery and process it through the real pipeline; return (status, event)."""
    raw = load_fixture(f"calendly/{body}") if isinstance(body, str) else to_body(body)
    result = store_delivery(raw)
    event = WebhookEvent.objects.get(pk=result.event.pk)
    status = processing.process_event(event.pk)
    event.refresh_from_db()
    return status, event


def booking(invitee_suffix: str = "") -> Booking:
    qs = Booking.objects.all()
    if invitee_suffix:
        qs = qs.filter(invitee_uri__endswith=invitee_suffix)
    return qs.get()


def sent(call) -> object:
    return json.loads(call.request.body)
