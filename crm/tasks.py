"""Thin django-q2 entry points for the crm app. The logic lives in `crm.oauth`."""

from __future__ import annotations

from crm import oauth
from crm.errors import KommoReconnectNeeded


def keep_kommo_oauth_fresh() -> str:
    """Scheduled (data migration 0005): refresh the OAuth access token when due, even without traffic."""
    try:
        return oauth.keep_fresh()
    except KommoReconnectNeeded as exc:  # already alerted once; the schedule must not fail every run
        return str(exc)
