"""The sandbox's demo data: a Kommo account and a Zoom account in which the sample booking lands.

The sample invitee (the one `send_test_booking` books by default) has a Kommo contact with one open deal
and one won deal, and a second contact merely *mentions* her e-mail in a comment: Kommo's fuzzy search
returns both, so the sandbox shows calsync filtering on the EMAIL field itself.
"""

from __future__ import annotations

from typing import Any

DEMO_INVITEE_EMAIL = "lucia.fernandez@clientco.example"
DEMO_INVITEE_NAME = "Lucía Fernández"
DEMO_HOST_EMAIL = "marta.ruiz@acme-sales.example"
DEMO_HOST_NAME = "Marta Ruiz"
DEMO_OPEN_DEAL_ID = 18734521
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
