"""The review queue in words: why an item waits, how long, how soon its meeting is, whose deals these are."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from django.utils import timezone

from calsync.errors import SyncError
from crm.client import kommo_client
from crm.matching import NOT_THE_INVITEES_DEAL

logger = logging.getLogger(__name__)

SOON = timedelta(hours=24)  # a meeting this close is shown in red: decide it first

REASONS = {
    "several": "Several open deals",
    "not_theirs": "A Deal ID that is not the invitee’s",
    "no_deal": "No open deal",
    "deal_gone": "The chosen deal is gone",
    "lead_unknown": "An incoming lead may exist already",
    "other": "Something else",
}

_SEVERAL = re.compile(r"(\d+) open deals: needs review")


def reason_kind(match_reason: str) -> str:
    """Which of REASONS a stored match reason is (for the filter and the sentence)."""
    text = match_reason or ""
    if _SEVERAL.search(text):
        return "several"
    if text.startswith(NOT_THE_INVITEES_DEAL):
        return "not_theirs"
    if "does not exist in Kommo" in text:
        return "deal_gone"
    if "answer was lost" in text:
        return "lead_unknown"
    if any(words in text for words in ("no Kommo contact", "no deals", "only closed deals", "no open deal")):
        return "no_deal"
    return "other"


def reason_sentence(match_reason: str, invitee_name: str) -> str:
    """Why the meeting waits, as a sentence a salesperson reads without knowing calsync."""
    kind = reason_kind(match_reason)
    if kind == "several":
        count = _SEVERAL.search(match_reason)[1]
        return f"{invitee_name} has {count} open deals in Kommo, and calsync cannot tell which one this meeting is for."
    if kind == "not_theirs":
        detail = match_reason[len(NOT_THE_INVITEES_DEAL) :].removesuffix(": needs review").strip(" ()")
        return f"The booking names a Kommo deal that is not {invitee_name}’s ({detail}): check it before using it."
    if kind == "no_deal":
        return f"Kommo has no open deal for {invitee_name}’s e-mail: use another deal, create a lead, or skip."
    text = (match_reason or "calsync could not choose a deal on its own").removesuffix(": needs review")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _hours_words(delta: timedelta) -> str:
    minutes = round(abs(delta).total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{round(minutes / (24 * 60))} days"


def waited(since: datetime, now: datetime | None = None) -> str:
    """How long an item has waited: "3 h"."""
    return _hours_words((now or timezone.now()) - since)


def meeting_in(start: datetime, now: datetime | None = None) -> str:
    """When the meeting is, from now: "in 5 h", or "2 h ago"."""
    delta = start - (now or timezone.now())
    return f"in {_hours_words(delta)}" if delta >= timedelta(0) else f"{_hours_words(delta)} ago"


def is_soon(start: datetime, now: datetime | None = None) -> bool:
    return start - (now or timezone.now()) < SOON


def responsible_user_ids(link) -> list[int]:
    """The Kommo users responsible for the meeting's deal, or for its candidate deals."""
    if link.lead_responsible_user_id:
        return [int(link.lead_responsible_user_id)]
    ids = (c.get("responsible_user_id") for c in link.candidates or [])
    return list(dict.fromkeys(int(i) for i in ids if i))


def user_names() -> dict[int, str]:
    """Kommo's users by id (the client caches the list for an hour); empty when Kommo cannot be asked."""
    try:
        # Names only decorate the list: ask once, without the sync's patient retries.
        users = kommo_client(read_backoff=(), max_rate_limited_retries=0).get_users()
    except (SyncError, ValueError) as exc:
        logger.warning("kommo: user names for the review queue unavailable: %s", exc)
        return {}
    return {int(u["id"]): u.get("name") or u.get("email") or str(u["id"]) for u in users if u.get("id")}
