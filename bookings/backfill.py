"""Reconciliation and backfill: compare Calendly's scheduled events with our bookings and heal the gaps.

For every event starting in a window (the API filters on start time only:
https://developer.calendly.com/api-docs/calendly-api/scheduled-events/list-scheduled-events) and
every invitee whose state differs from our booking (missing, or cancelled there but live here), build a
delivery shaped exactly like Calendly's webhook (envelope + invitee + embedded `scheduled_event`) and
store it through `intake.store_delivery(source=reconciliation)`. It then follows the same pipeline as a real
webhook, and the (kind, invitee URI) key de-duplicates it against one that arrives late.

Cheap when nothing is missing: an event whose `invitees_counter` matches our bookings for it needs no
invitee call, so a run over an in-sync window costs only the event list pages.

It also finishes bookings whose conference link Calendly was still making (`join_url` null while the
location's status is `processing`): when the link exists, the booking gets it and its sync runs again;
when Calendly's conference `failed`, the booking says so and its sync makes calsync's own Zoom meeting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from bookings import intake
from bookings.calendly import (
    CALENDLY_CONFERENCE_TYPES,
    CONFERENCE_FAILED,
    INVITEE_CANCELED,
    INVITEE_CREATED,
    parse_location,
    parse_timestamp,
)
from bookings.calendly_api import CalendlyClient, CalendlyNotFound
from bookings.calendly_json import PayloadError
from bookings.delivery_keys import delivery_key
from bookings.models import Booking, WebhookEvent
from bookings.processing import replay
from bookings.subscriptions import find_owner

logger = logging.getLogger(__name__)

BATCH = 100
MAX_LINK_LOOKUPS = 100  # per run: each is one GET
IN_FLIGHT = Q(status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING]) | Q(
    status=WebhookEvent.Status.FAILED, next_attempt_at__isnull=False
)


@dataclass
class BackfillReport:
    since: datetime
    until: datetime
    dry_run: bool = False
    events_seen: int = 0
    events_in_sync: int = 0
    invitees_checked: int = 0
    stored: list[tuple[str, str, int | None]] = field(default_factory=list)  # (kind, invitee URI, event id)
    already_stored: list[tuple[str, str, int]] = field(default_factory=list)
    links_refreshed: list[int] = field(default_factory=list)  # booking ids
    requests: int = 0

    def summary(self) -> str:
        verb = "would store" if self.dry_run else "stored"
        return (
            f"{self.since:%Y-%m-%d %H:%M}–{self.until:%Y-%m-%d %H:%M} UTC: {self.events_seen} event(s), "
            f"{self.events_in_sync} already in sync, {self.invitees_checked} invitee(s) checked, "
            f"{verb} {len(self.stored)}, {len(self.already_stored)} already in the pipeline, "
            f"{len(self.links_refreshed)} conference link(s) refreshed, {self.requests} API request(s)"
        )


def delivery_body(kind: str, invitee: dict, event: dict, created_by: str) -> bytes:
    """The bytes of a webhook delivery for this invitee, as Calendly would have sent it."""
    cancellation = invitee.get("cancellation") or {}
    if kind == INVITEE_CANCELED:
        created_at = cancellation.get("created_at") or invitee.get("updated_at")
    else:
        created_at = invitee.get("created_at")
    envelope = {
        "created_at": created_at,
        "created_by": created_by,
        "event": kind,
        "payload": {**invitee, "scheduled_event": event},
    }
    return json.dumps(envelope, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def needed_delivery(invitee: dict, booking: Booking | None) -> str | None:
    """The kind of delivery our booking is missing for this invitee, or None when it is in step.

    Status only moves forward (bookings.state): a live invitee never revives a cancelled booking.
    """
    canceled = invitee.get("status") == "canceled"
    if booking is None:
        # A cancel alone makes the whole booking (its payload carries the invitee and the event).
        return INVITEE_CANCELED if canceled else INVITEE_CREATED
    if canceled and booking.status == Booking.Status.SCHEDULED:
        return INVITEE_CANCELED
    return None


def event_in_sync(event: dict, bookings: list[Booking]) -> bool:
    """Whether Calendly's invitee counts for an event match our bookings (then no invitee call is needed)."""
    counter = event.get("invitees_counter") or {}
    total, active = counter.get("total"), counter.get("active")
    if not isinstance(total, int) or not isinstance(active, int) or len(bookings) != total:
        return False
    live = sum(1 for b in bookings if b.is_live)
    return live == 0 if event.get("status") == "canceled" else live == active


class Backfill:
    def __init__(
        self,
        client: CalendlyClient,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        enqueue: Callable[[int, str], None] | None = None,
    ):
        self.client = client
        self.dry_run = dry_run
        self.now = now or timezone.now()
        self.enqueue = enqueue
        self.known_events: dict[str, dict] = {}

    def run(self, since: datetime, until: datetime) -> BackfillReport:
        report = BackfillReport(since=since, until=until, dry_run=self.dry_run)
        owner = find_owner(self.client)
        self.created_by = owner.user
        filters = {"organization": owner.organization} if owner.scope == "organization" else {"user": owner.user}
        for status in ("active", "canceled"):
            batch: list[dict] = []
            for event in self.client.list_scheduled_events(
                **filters, min_start_time=since, max_start_time=until, status=status
            ):
                batch.append(event)
                if len(batch) >= BATCH:
                    self._check_events(batch, report)
                    batch = []
            self._check_events(batch, report)
        self.refresh_pending_links(report)
        report.requests = self.client.requests_made
        logger.info("calendly reconciliation: %s", report.summary())
        return report

    def _check_events(self, events: list[dict], report: BackfillReport) -> None:
        if not events:
            return
        ours: dict[str, list[Booking]] = {}
        for booking in Booking.objects.filter(event_uri__in=[e["uri"] for e in events]):
            ours.setdefault(booking.event_uri, []).append(booking)
        for event in events:
            report.events_seen += 1
            self.known_events[event["uri"]] = event
            bookings = ours.get(event["uri"], [])
            if event_in_sync(event, bookings):
                report.events_in_sync += 1
            else:
                self._check_invitees(event, {b.invitee_uri: b for b in bookings}, report)
            for booking in bookings:
                if _waiting_for_link(booking, self.now):
                    self._refresh_link(booking, event, report)

    def _check_invitees(self, event: dict, bookings: dict[str, Booking], report: BackfillReport) -> None:
        for invitee in self.client.list_event_invitees(event["uri"]):
            report.invitees_checked += 1
            uri = invitee.get("uri") or ""
            kind = needed_delivery(invitee, bookings.get(uri))
            if kind is None:
                continue
            existing = WebhookEvent.objects.filter(dedupe_key=delivery_key(kind, uri)).only("pk").first()
            if existing is not None:  # already in the pipeline (queued, failed or done)
                report.already_stored.append((kind, uri, existing.pk))
                continue
            if self.dry_run:
                report.stored.append((kind, uri, None))
                continue
            result = intake.store_delivery(delivery_body(kind, invitee, event, self.created_by), source=_SOURCE)
            report.stored.append((kind, uri, result.event.pk))
            logger.info("reconciliation stored missed %s as event %s", kind, result.event.pk)

    # --- conference links still being made ----------------------------------------------------------

    def refresh_pending_links(self, report: BackfillReport) -> None:
        """Bookings outside the window (or not listed) still waiting for Calendly's conference link."""
        pending = waiting_for_link(self.now).exclude(event_uri__in=list(self.known_events))
        for booking in pending.order_by("start_at")[:MAX_LINK_LOOKUPS]:
            try:
                event = self.client.get_scheduled_event(booking.event_uri)
            except CalendlyNotFound:
                logger.warning("booking %s: its Calendly event is gone; not refreshing its link", booking.pk)
                continue
            self.known_events[booking.event_uri] = event
            self._refresh_link(booking, event, report)

    def _refresh_link(self, booking: Booking, event: dict, report: BackfillReport) -> None:
        if refresh_conference_link(booking, event, dry_run=self.dry_run, now=self.now, enqueue=self.enqueue):
            report.links_refreshed.append(booking.pk)


_SOURCE = WebhookEvent.Source.RECONCILIATION


def waiting_for_link(now: datetime):
    """Live, not yet over, Calendly makes the conference, and we have no link for it yet."""
    return Booking.objects.filter(
        status=Booking.Status.SCHEDULED,
        location_type__in=CALENDLY_CONFERENCE_TYPES,
        location_join_url="",
        end_at__gte=now,
    ).exclude(location_status=CONFERENCE_FAILED)


def _waiting_for_link(booking: Booking, now: datetime) -> bool:
    live = booking.is_live and booking.end_at >= now
    return live and booking.calendly_owns_conference and not booking.location_join_url


def refresh_conference_link(
    booking: Booking,
    event: dict,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    enqueue: Callable[[int, str], None] | None = None,
) -> bool:
    """Give the booking the join link Calendly has made since, and run its sync again. True if done."""
    try:
        location = parse_location(event.get("location"), "scheduled_event.location")
        updated_at = parse_timestamp(event["updated_at"]) if event.get("updated_at") else None
    except PayloadError as exc:
        logger.warning("booking %s: unreadable event from Calendly (%s)", booking.pk, exc)
        return False
    # Calendly gave up making it: stop waiting, and let the sync make calsync's own meeting instead.
    failed = location.type in CALENDLY_CONFERENCE_TYPES and location.status == CONFERENCE_FAILED
    if not failed and (not location.join_url or not location.calendly_owns_conference):
        return False
    if booking.events.filter(IN_FLIGHT).exists():
        return False  # that event's processing will run the sync; look again next time
    if dry_run:
        return True
    # Replaying the stored delivery re-applies its payload, whose join_url is still null. Mark the
    # booking's data as newer than that payload so the replay keeps the link, even when Calendly
    # did not move the event's `updated_at` when it made the conference.
    stamp = booking.source_updated_at
    if stamp is None or (updated_at is not None and updated_at > stamp):
        stamp = updated_at
    else:
        stamp = stamp + timedelta(microseconds=1)
    link = (
        {}
        if failed
        else {"location_join_url": location.join_url[:1000], "conference_join_url": location.join_url[:1000]}
    )
    changed = Booking.objects.filter(pk=booking.pk, location_join_url="").update(
        **link,
        location_status=location.status or "",
        location_conference_id=location.conference_id or booking.location_conference_id,
        source_updated_at=stamp,
        updated_at=now or timezone.now(),
    )
    if not changed:
        return False
    own = booking.events.order_by("-received_at", "-pk")
    event_row = own.filter(kind=INVITEE_CREATED).first() or own.first()
    if event_row is not None:
        result = replay(event_row, enqueue=enqueue)
        logger.info("booking %s: conference link now known; %s", booking.pk, result)
    return True


def backfill_window(
    client: CalendlyClient,
    since: datetime,
    until: datetime,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    enqueue: Callable[[int, str], None] | None = None,
) -> BackfillReport:
    return Backfill(client, dry_run=dry_run, now=now, enqueue=enqueue).run(since, until)


def rolling_window(now: datetime, past_hours: float, future_days: float) -> tuple[datetime, datetime]:
    return now - timedelta(hours=past_hours), now + timedelta(days=future_days)
