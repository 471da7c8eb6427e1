"""Intake: store a verified Calendly delivery (de-duplicated) and queue it.

The webhook view (`bookings.webhooks`) calls this after checking the signature and maps the outcome
to its HTTP answer; the Calendly backfill (`bookings.backfill`) calls it for deliveries it rebuilds
from the API. Nothing here knows about HTTP.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from bookings.calendly import parse_delivery_data
from bookings.calendly_json import PayloadError, decode_body
from bookings.delivery_keys import stored_key
from bookings.models import WebhookEvent
from bookings.queue import enqueue_processing
from bookings.state import is_handled_kind
from calsync.durability import sync_commits_to_disk
from calsync.metrics import count_event_stored, count_redelivery

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # stored and queued for processing
    DUPLICATE = "duplicate"  # a redelivery of something already stored (its counter bumped)
    IGNORED = "ignored"  # stored as `ignored`: a kind calsync does not act on
    UNUSABLE = "unusable"  # stored as `failed` with the raw body: signed, but not a Calendly delivery


@dataclass(frozen=True)
class IntakeResult:
    event: WebhookEvent
    outcome: Outcome
    reason: str = ""  # why, for UNUSABLE


def store_delivery(raw: bytes, *, source: str = WebhookEvent.Source.WEBHOOK) -> IntakeResult:
    """Store a verified delivery (de-duplicated) and queue it."""
    data = None
    try:
        data = decode_body(raw)
        delivery = parse_delivery_data(data)
    except PayloadError as exc:
        kind = data.get("event") if isinstance(data, dict) and isinstance(data.get("event"), str) else ""
        reason = f"not a usable Calendly delivery: {exc}"
        event, _created = _create_or_existing(
            stored_key(None, raw),
            kind=kind[:100] or "(unreadable)",
            raw_body=raw,
            payload=data,
            status=WebhookEvent.Status.FAILED,
            last_error=reason,
            processed_at=timezone.now(),
            source=source,
        )
        logger.warning("calendly webhook: signed body stored as failed event %s: %s", event.pk, exc)
        return IntakeResult(event, Outcome.UNUSABLE, reason)

    handled = is_handled_kind(delivery.kind)
    invitee = delivery.invitee
    fields = {
        "kind": delivery.kind,
        "raw_body": raw,
        "payload": data,
        "calendly_created_at": delivery.created_at,
        "invitee_uri": (invitee.uri if invitee else delivery.payload_uri or "")[:500],
        "event_uri": (invitee.event_uri if invitee else "")[:500],
        "invitee_email": (invitee.email if invitee else "")[:320],
        "source": source,
    }
    if handled:
        fields["next_attempt_at"] = timezone.now() + timedelta(seconds=settings.CALSYNC_ENQUEUE_GRACE)
    else:
        fields.update(
            status=WebhookEvent.Status.IGNORED,
            last_error=f"calsync does not act on {delivery.kind!r} deliveries",
            processed_at=timezone.now(),
        )
    event, created = _create_or_existing(stored_key(delivery, raw), **fields)
    if not created:
        logger.info("calendly webhook: redelivery of event %s (%s)", event.pk, event.kind)
        return IntakeResult(event, Outcome.DUPLICATE)
    if not handled:
        logger.info("calendly webhook: %s stored as ignored event %s", delivery.kind, event.pk)
        return IntakeResult(event, Outcome.IGNORED)
    logger.info("calendly webhook: %s stored as event %s", delivery.kind, event.pk)
    return IntakeResult(event, Outcome.ACCEPTED)


def _bump_existing(key: str) -> WebhookEvent:
    WebhookEvent.objects.filter(dedupe_key=key).update(deliveries=F("deliveries") + 1)
    event = WebhookEvent.objects.get(dedupe_key=key)
    count_redelivery(event.kind)
    return event


def _create_or_existing(key: str, **fields) -> tuple[WebhookEvent, bool]:
    """Insert the event, or return the one already stored under the same key (a redelivery).

    The unique key settles races between two identical deliveries arriving at once, and redeliveries
    (rare): no look-up first, one transaction (event, task, counters) and one commit per new delivery.
    """
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(dedupe_key=key, **fields)
            if event.status == WebhookEvent.Status.RECEIVED:
                enqueue_processing(event.pk)
            count_event_stored(event.kind, event.source)
    except IntegrityError:
        return _bump_existing(key), False
    sync_commits_to_disk()  # an acknowledged delivery is never resent: it must outlive a power cut
    return event, True
