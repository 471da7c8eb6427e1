"""The Kommo client as calsync runs it: from settings, with the OAuth connection and the shared rate limit.

`crm.kommo` is the plain API client (no settings, no models); this is where it is wired to both.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from calsync.http import build_session
from crm.kommo import KommoClient
from crm.oauth import kommo_credentials
from crm.ratelimit import SharedRateLimiter


def kommo_client(**overrides: Any) -> KommoClient:
    """A KommoClient from settings; `overrides` replace its keyword arguments (`clock` goes to the limiter)."""
    limiter_kw = {k: overrides.pop(k) for k in ("clock",) if k in overrides}
    sleep = overrides.pop("sleep", time.sleep)
    limiter = SharedRateLimiter(
        "kommo",
        settings.KOMMO_MAX_RPS,
        sleep=sleep,
        max_wait=settings.KOMMO_MAX_INLINE_WAIT * 6,
        margin=settings.KOMMO_RATE_MARGIN,
        **limiter_kw,
    )
    kwargs = {
        "cache": cache,
        "users_cache_seconds": settings.KOMMO_USERS_CACHE_SECONDS,
        "max_inline_wait": settings.KOMMO_MAX_INLINE_WAIT,
        **overrides,
    }
    base_url, tokens = kommo_credentials()  # OAuth when connected, else KOMMO_ACCESS_TOKEN
    return KommoClient(
        base_url,
        tokens,
        # The session counts every call for /metrics.
        build_session((settings.KOMMO_CONNECT_TIMEOUT, settings.KOMMO_READ_TIMEOUT), service="kommo"),
        limiter,
        sleep,
        **kwargs,
    )
