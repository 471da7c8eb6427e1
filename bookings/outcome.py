"""What a replay or a "Sync again" did, in one sentence for the person who pressed the button."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib import messages

from bookings.health import SERVICES, plain_error
from bookings.models import Booking, ProcessingAttempt, SyncDrift, WebhookEvent
from bookings.processing import ReplayResult


@dataclass(frozen=True)
class Outcome:
    level: int  # a django.contrib.messages level
    text: str


# More selected at once than this and a list action queues them: each inline sync takes a second or two.
INLINE_AT_MOST = 5


def run_inline(count: int = 1) -> bool:
    """Buttons and list actions run the sync in the request (it takes a second or two) unless set off."""
    return bool(settings.CALSYNC_ADMIN_SYNC_INLINE) and count <= INLINE_AT_MOST


def what_was_done(event_id: int) -> str:
    """The steps of the event's last attempt, e.g. "Kommo: deal 18734521 (manual); note 7; task 9"."""
    attempt = ProcessingAttempt.objects.filter(event_id=event_id).order_by("-number", "-pk").first()
    if attempt is None:
        return ""
    parts = [
        f"{SERVICES.get(step.get('step'), step.get('step'))}: {step.get('detail') or 'up to date'}"
        for step in attempt.steps or []
        if step.get("ok") and step.get("step") != "booking"
    ]
    return "; ".join(parts)


def describe(result: ReplayResult | None, *, subject: str = "") -> Outcome:
    """`subject` names what was synced ("Lucía Fernández’s meeting"), or nothing."""
    lead = f"{subject}: " if subject else ""
    if result is None:
        return Outcome(messages.WARNING, f"{lead}calsync has no stored delivery for it, so there is nothing to sync.")
    if result.outcome == "queued":
        return Outcome(
            messages.INFO,
            f"{lead}queued: the worker syncs it within a minute; reload this page to see the outcome.",
        )
    if result.outcome == "skipped":
        return Outcome(messages.WARNING, f"{lead}not started: it is being synced right now; try again in a minute.")
    if result.outcome == "ignored":
        return Outcome(messages.INFO, f"{lead}nothing to do: calsync does not act on this kind of delivery.")
    if result.outcome == "done":
        done = what_was_done(result.event_id)
        return Outcome(messages.SUCCESS, f"{lead}done" + (f" — {done}." if done else "."))
    event = WebhookEvent.objects.filter(pk=result.event_id).first()
    why = plain_error(event.last_error if event else result.detail)
    retry = ""
    if event is not None and event.next_attempt_at is not None:
        retry = " calsync tries again on its own."
    return Outcome(messages.ERROR, f"{lead}failed again: {why}{retry}")


def repairs_since(booking: Booking, since: datetime) -> str:
    """What the check before a "Sync again" repaired (a task deleted by hand made again, …), in words."""
    drifts = SyncDrift.objects.filter(booking=booking, updated_at__gte=since, outcome=SyncDrift.Outcome.REPAIRED)
    return " ".join(f"Repaired: {drift.detail}." for drift in drifts.order_by("found_at", "pk"))
