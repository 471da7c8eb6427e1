"""Calendly API shapes for tests: fixture files, and events/invitees derived from the webhook fixtures.

The API's Invitee has the webhook payload's fields without the embedded `scheduled_event`; the API's
Event is that embedded object (https://developer.calendly.com/api-docs/calendly-api/scheduled-events/get-scheduled-event).
"""

from __future__ import annotations

import copy
from typing import Any

from responses import matchers

from tests.conftest import load_json

API = "https://api.calendly.com"
ORG = "https://api.calendly.com/organizations/4a8b2c6d-1e3f-4a5b-8c7d-9e0f1a2b3c4d"
ME = "https://api.calendly.com/users/1f0e9d8c-7b6a-4c5d-9e4f-3a2b1c0d9e8f"
HOOK_URL = "https://calsync.example.com/webhooks/calendly/"
SUB_URI = "https://api.calendly.com/webhook_subscriptions/9d3e1f5a-2b7c-4d8e-a6f0-1c2b3a4d5e6f"


def api_json(name: str) -> Any:
    return load_json(f"calendly_api/{name}")


def split_delivery(data: dict) -> tuple[dict, dict]:
    """(API invitee, API event) from a webhook delivery."""
    payload = copy.deepcopy(data["payload"])
    event = payload.pop("scheduled_event")
    event["calendar_event"] = {"kind": "google", "external_id": "8d2b0f1e4a6c"}  # a field of the REST Event only
    return payload, event


def page(collection: list, next_page: str | None = None) -> dict:
    return {
        "collection": collection,
        "pagination": {
            "count": len(collection),
            "next_page": next_page,
            "next_page_token": next_page.rsplit("=", 1)[-1] if next_page else None,
            "previous_page": None,
            "previous_page_token": None,
        },
    }


def subscription(state: str = "active", *, uri: str = SUB_URI, url: str = HOOK_URL, **extra: Any) -> dict:
    sub = api_json("webhook_subscription_created.json")["resource"]
    sub.update(state=state, uri=uri, callback_url=url, **extra)
    if state == "disabled" and not sub["retry_started_at"]:
        sub["retry_started_at"] = "2026-11-25T03:12:44.000000Z"  # set when Calendly started retrying
    return sub


def mock_me(rsps) -> None:
    rsps.get(f"{API}/users/me", json=api_json("users_me.json"))


def mock_subscriptions(rsps, subs: list[dict], scope: str = "organization") -> None:
    rsps.get(
        f"{API}/webhook_subscriptions",
        json=page(subs),
        match=[matchers.query_param_matcher({"organization": ORG, "scope": scope}, strict_match=False)],
    )


def mock_events(rsps, status: str, events: list[dict], **params: str) -> None:
    rsps.get(
        f"{API}/scheduled_events",
        json=page(events),
        match=[matchers.query_param_matcher({"status": status, "organization": ORG, **params}, strict_match=False)],
    )


def mock_invitees(rsps, event: dict, invitees: list[dict]) -> None:
    uuid = event["uri"].rsplit("/", 1)[-1]
    rsps.get(f"{API}/scheduled_events/{uuid}/invitees", json=page(invitees))
