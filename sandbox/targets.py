"""Is this calsync pointed at the local emulators, or at real Kommo and Zoom accounts?

`send_test_booking` signs sample bookings with the real signing key. Sent to a calsync whose Kommo or
Zoom settings name real accounts, they would become real leads, tasks and Zoom meetings; so it asks
here first and refuses unless every configured target is on this machine.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings

LOCAL_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def real_targets(webhook_url: str) -> list[str]:
    """What is not local: configured Kommo/Zoom addresses, and the webhook the bookings go to."""
    from crm.oauth import kommo_credentials

    found = []
    kommo_url, _token = kommo_credentials()
    if kommo_url and not is_loopback_url(kommo_url):
        found.append(f"Kommo at {kommo_url}")
    if settings.ZOOM_CLIENT_ID or settings.ZOOM_ACCOUNT_ID:
        for name in ("ZOOM_API_URL", "ZOOM_OAUTH_URL"):
            url = getattr(settings, name)
            if not is_loopback_url(url):
                found.append(f"Zoom at {url} ({name})")
    if not is_loopback_url(webhook_url):
        found.append(f"the webhook at {webhook_url}")
    return found
