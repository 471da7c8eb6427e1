"""The sandbox's demo data: a Kommo account and a Zoom account in which the sample booking lands.

The sample invitee (the one `send_test_booking` books by default) has a Kommo contact with one open deal
and one won deal, and a second contact merely *mentions* her e-mail in a comment: Kommo's fuzzy search
returns both, so the sandbox shows calsync filtering on the EMAIL field itself. A third contact has two
open deals (``--as several-deals``: staff choose in the review queue), and ``--as unknown`` books with an
address the CRM does not know (an incoming lead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEMO_INVITEE_EMAIL = "lucia.fernandez@clientco.example"
DEMO_INVITEE_NAME = "Lucía Fernández"
DEMO_HOST_EMAIL = "marta.ruiz@acme-sales.example"
DEMO_HOST_NAME = "Marta Ruiz"
DEMO_OPEN_DEAL_ID = 18734521
# A contact with two open deals: calsync cannot tell which one the meeting is about (the review queue).
SEVERAL_DEALS_EMAIL = "jonas.becker@northwind.example"
SEVERAL_DEALS_NAME = "Jonas Becker"
SEVERAL_DEALS_IDS = (18735010, 18735011)
# Nobody in the demo CRM: calsync makes an incoming lead.
UNKNOWN_EMAIL = "nina.prospect@newco.example"
UNKNOWN_NAME = "Nina Prospect"
INVITEES = {  # send_test_booking --as
    "demo": (DEMO_INVITEE_EMAIL, DEMO_INVITEE_NAME),
    "several-deals": (SEVERAL_DEALS_EMAIL, SEVERAL_DEALS_NAME),
    "unknown": (UNKNOWN_EMAIL, UNKNOWN_NAME),
}
KOMMO_TOKEN = "sandbox-kommo-token"  # noqa: S105 - sandbox credentials, printed on purpose
ZOOM_ACCOUNT_ID = "sandbox-account"
ZOOM_CLIENT_ID = "sandbox-client"
ZOOM_CLIENT_SECRET = "sandbox-secret"  # noqa: S105


def kommo_seed() -> dict[str, Any]:
    return {
        "account_id": 28805383,
        "subdomain": "sandbox",
        "tokens": {KOMMO_TOKEN: 504141},
        "users": [
            {"id": 504141, "name": DEMO_HOST_NAME, "email": DEMO_HOST_EMAIL, "is_admin": True},
            {"id": 504142, "name": "Tomás Vidal", "email": "tomas.vidal@acme-sales.example", "is_admin": False},
        ],
        "leads": [
            {"id": DEMO_OPEN_DEAL_ID, "name": "ClientCo — 25 seats", "price": 12500, "status_id": 49366085},
            {"id": 18734400, "name": "ClientCo — pilot", "price": 900, "status_id": 142},
            {"id": 18734777, "name": "Garcia consulting", "price": 3000, "status_id": 49366088},
            {"id": SEVERAL_DEALS_IDS[0], "name": "Northwind — 40 seats", "price": 20000, "status_id": 49366085},
            {"id": SEVERAL_DEALS_IDS[1], "name": "Northwind — support plan", "price": 6000, "status_id": 49366088},
        ],
        "contacts": [
            {
                "id": 3070001,
                "first_name": "Lucía",
                "last_name": "Fernández",
                "emails": [DEMO_INVITEE_EMAIL],
                "phones": ["+34 612 345 678"],
                "lead_ids": [DEMO_OPEN_DEAL_ID, 18734400],
                "responsible_user_id": 504141,
            },
            {
                "id": 3070002,
                "first_name": "Pablo",
                "last_name": "García",
                "emails": ["pablo.garcia@clientco.example"],
                "comment": f"Works with {DEMO_INVITEE_EMAIL} on the ClientCo rollout",
                "lead_ids": [18734777],
                "responsible_user_id": 504142,
            },
            {
                "id": 3070003,
                "first_name": "Jonas",
                "last_name": "Becker",
                "emails": [SEVERAL_DEALS_EMAIL],
                "lead_ids": list(SEVERAL_DEALS_IDS),
                "responsible_user_id": 504142,
            },
        ],
    }


def zoom_seed() -> dict[str, Any]:
    return {
        "users": [
            {
                "id": "KDcuGIm1QgePTO8WbOqwIQ",
                "email": DEMO_HOST_EMAIL,
                "first_name": "Marta",
                "last_name": "Ruiz",
                "timezone": "Europe/Madrid",
            },
            {"id": "z8yAAAAA8bbbQ", "email": "tomas.vidal@acme-sales.example", "first_name": "Tomás"},
        ]
    }


def sandbox_env(kommo_url: str, zoom_url: str) -> dict[str, str]:
    """The settings that point calsync at the emulators (what `run_emulators` prints and writes)."""
    env = {
        "CALSYNC_SANDBOX": "true",
        "KOMMO_BASE_URL": kommo_url,
        "KOMMO_ACCESS_TOKEN": KOMMO_TOKEN,
        "ZOOM_API_URL": f"{zoom_url}/v2",
        "ZOOM_OAUTH_URL": f"{zoom_url}/oauth/token",
        "ZOOM_ACCOUNT_ID": ZOOM_ACCOUNT_ID,
        "ZOOM_CLIENT_ID": ZOOM_CLIENT_ID,
        "ZOOM_CLIENT_SECRET": ZOOM_CLIENT_SECRET,
        "ZOOM_DEFAULT_USER": DEMO_HOST_EMAIL,
    }
    return env


def sandbox_policies(configured: Mapping[str, str]) -> dict[str, str]:
    """The sandbox asks staff about a contact with several open deals, so that `--as several-deals` fills the
    review queue; unless KOMMO_SEVERAL_DEALS_POLICY is set already (environment or .env)."""
    if "KOMMO_SEVERAL_DEALS_POLICY" in configured:
        return {}
    return {"KOMMO_SEVERAL_DEALS_POLICY": "review"}
