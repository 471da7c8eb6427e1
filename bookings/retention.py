"""Retention: finished events keep their ids and outcome, not the invitee's personal data.

After CALSYNC_RETENTION_DAYS a `done` or `ignored` event's raw body is emptied, its payload is reduced
to the ids and the outcome, and its e-mail column is blanked. Failed events are kept whole: a human
still needs them. Bookings are the working record for the CRM and are not touched here.

After CALSYNC_EVENT_DELETE_DAYS (longer) a finished event is deleted with its processing attempts,
so the event tables stop growing. Calendly never redelivers that late, so losing its de-duplication
key does no harm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from bookings.models import WebhookEvent

logger = logging.getLogger(__name__)

FINISHED = (WebhookEvent.Status.DONE, WebhookEvent.Status.IGNORED)
CHUNK = 500


@dataclass(frozen=True)
class RetentionResult:
    cutoff: datetime
    redacted: int
    dry_run: bool

    def __str__(self) -> str:
        verb = "would redact" if self.dry_run else "redacted"
        return f"{verb} {self.redacted} finished event(s) older than {self.cutoff:%Y-%m-%d %H:%M} UTC"


def due_for_redaction(cutoff: datetime):
    return (
        WebhookEvent.objects.filter(status__in=FINISHED, redacted_at__isnull=True)
        .annotate(finished=Coalesce("processed_at", "received_at"))
        .filter(Q(finished__lt=cutoff))
    )


def redacted_payload(event: WebhookEvent) -> dict:
    """What is left of a delivery: which kind, which invitee and event, and how it ended."""
    created_at = event.calendly_created_at.isoformat() if event.calendly_created_at else None
    return {
        "redacted": True,
        "event": event.kind,
        "created_at": created_at,
        "payload": {"uri": event.invitee_uri, "event": event.event_uri},
        "outcome": event.status,
        "booking": event.booking_id,
    }


def redact_old_events(
    *, days: int | None = None, now: datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    days = settings.CALSYNC_RETENTION_DAYS if days is None else days
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    due = due_for_redaction(cutoff)
    if dry_run:
        return RetentionResult(cutoff, due.count(), True)
    total = 0
    while True:
        chunk = list(due.order_by("pk")[:CHUNK])
        if not chunk:
            break
        for event in chunk:
            event.payload = redacted_payload(event)
            event.raw_body = b""
            event.invitee_email = ""
            event.last_traceback = ""
            event.redacted_at = now
        WebhookEvent.objects.bulk_update(
            chunk, ["payload", "raw_body", "invitee_email", "last_traceback", "redacted_at"]
        )
        total += len(chunk)
    if total:
        logger.info("retention: redacted %d finished event(s) older than %d day(s)", total, days)
    return RetentionResult(cutoff, total, False)


@dataclass(frozen=True)
class DeletionResult:
    cutoff: datetime | None
    deleted: int
    dry_run: bool

    def __str__(self) -> str:
        if self.cutoff is None:
            return "deletion of old events is off (CALSYNC_EVENT_DELETE_DAYS=0)"
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} {self.deleted} finished event(s) older than {self.cutoff:%Y-%m-%d %H:%M} UTC"


def due_for_deletion(cutoff: datetime):
    return (
        WebhookEvent.objects.filter(status__in=FINISHED)
        .annotate(finished=Coalesce("processed_at", "received_at"))
        .filter(finished__lt=cutoff)
    )


def delete_old_events(*, days: int | None = None, now: datetime | None = None, dry_run: bool = False) -> DeletionResult:
    """Delete done/ignored events (and their processing attempts) finished more than `days` ago."""
    days = settings.CALSYNC_EVENT_DELETE_DAYS if days is None else days
    if days <= 0:
        return DeletionResult(None, 0, dry_run)
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    due = due_for_deletion(cutoff)
    if dry_run:
        return DeletionResult(cutoff, due.count(), True)
    total = 0
    while True:  # in chunks: short write transactions, the webhook keeps getting its turn
        ids = list(due.order_by("pk").values_list("pk", flat=True)[:CHUNK])
        if not ids:
            break
        WebhookEvent.objects.filter(pk__in=ids).delete()
        total += len(ids)
    if total:
        logger.info("retention: deleted %d finished event(s) older than %d day(s)", total, days)
    return DeletionResult(cutoff, total, False)
