"""Thin django-q2 entry points. The logic lives in `bookings.processing`."""

from __future__ import annotations

import logging

from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

from bookings import processing

logger = logging.getLogger(__name__)


def enqueue_processing(event_id: int, trigger: str = "queue") -> None:
    """Queue an event for processing: with the database broker in the current transaction, else once it commits.

    The database broker's task is a row in the same database: written in the event's transaction, both
    commit together (or neither), with one commit instead of two, and without django-q2's connection
    check before each broker call (it closes or pings the connection when not in a transaction: ~2 ms of
    the acknowledgement). Any other broker (Redis) is told after the commit, so that no worker starts
    before the row is visible; if this process dies between the two, the sweeper finds the `received` row
    after CALSYNC_ENQUEUE_GRACE.
    """
    if Conf.ORM and not Conf.SYNC and transaction.get_connection().in_atomic_block:
        async_task(
            "bookings.tasks.process_event", event_id, trigger, group="calendly", task_name=f"calendly-event-{event_id}"
        )
        return

    def _enqueue() -> None:
        try:
            async_task(
                "bookings.tasks.process_event",
                event_id,
                trigger,
                group="calendly",
                task_name=f"calendly-event-{event_id}",
            )
        except Exception:  # the broker is down: the row is safe, the sweeper retries the enqueue
            logger.exception("could not enqueue event %s; the sweeper will pick it up", event_id)

    transaction.on_commit(_enqueue)


def process_event(event_id: int, trigger: str = "queue") -> str:
    return processing.process_event(event_id, trigger=trigger)


def retry_due_events() -> str:
    """Scheduled every minute (data migration): re-enqueue lost, stuck and due-for-retry events."""
    result = processing.sweep(enqueue_processing)
    return f"requeued {len(result.requeued)}, lost workers {len(result.lost_workers)}"


# --- operations schedules (data migration 0005) -----------------------------------------------------


def _calendly_api_configured() -> bool:
    from django.conf import settings

    return bool(settings.CALENDLY_API_TOKEN)


def watch_calendly_subscription() -> str:
    """Scheduled: is our Calendly subscription still active? Alert (and maybe recreate) when not."""
    from django.conf import settings

    from bookings import subscriptions
    from bookings.calendly_api import CalendlyClient

    if not _calendly_api_configured() or not settings.CALENDLY_WEBHOOK_URL:
        return "skipped: set CALENDLY_API_TOKEN and CALENDLY_WEBHOOK_URL (or CALSYNC_PUBLIC_URL) to watch it"
    return str(subscriptions.watch(CalendlyClient.from_settings(), settings.CALENDLY_WEBHOOK_URL))


RECONCILE_LOCK = "calsync:calendly-reconcile-lock"


def reconcile_recent_bookings() -> str:
    """Scheduled: heal missed webhooks over the rolling window around now."""
    from django.conf import settings
    from django.core.cache import cache
    from django.utils import timezone

    from bookings.calendly_api import CalendlyClient
    from bookings.reconciliation import reconcile_window, rolling_window

    if not _calendly_api_configured():
        return "skipped: CALENDLY_API_TOKEN is not set"
    # A long backfill must not overlap the next run (both would spend the same rate limit).
    if not cache.add(RECONCILE_LOCK, "1", timeout=settings.Q_CLUSTER.get("timeout", 300) + 60):
        return "skipped: a reconciliation is already running"
    try:
        now = timezone.now()
        since, until = rolling_window(
            now, settings.CALENDLY_RECONCILE_PAST_HOURS, settings.CALENDLY_RECONCILE_FUTURE_DAYS
        )
        return reconcile_window(CalendlyClient.from_settings(), since, until, now=now).summary()
    finally:
        cache.delete(RECONCILE_LOCK)


def redact_old_events() -> str:
    """Scheduled daily: retention of finished events' personal data, then deletion of very old ones."""
    from bookings.retention import delete_old_events
    from bookings.retention import redact_old_events as redact

    return f"{redact()}; {delete_old_events()}"


VERIFY_SCHEDULE = "calsync: verify Kommo and Zoom"
VERIFY_LOCK = "calsync:verify-lock"


def verify_live_bookings() -> str:
    """Scheduled (data migration 0010): check the coming days' live bookings against Kommo and Zoom."""
    from django.conf import settings
    from django.core.cache import cache
    from django_q.models import Schedule

    from bookings.verification import live_bookings, verify

    minutes = settings.CALSYNC_VERIFY_MINUTES
    if minutes <= 0:
        return "skipped: CALSYNC_VERIFY_MINUTES is 0 (verification turned off)"
    Schedule.objects.filter(name=VERIFY_SCHEDULE).exclude(minutes=minutes).update(minutes=minutes)
    # Two runs at once would only spend the budget twice.
    if not cache.add(VERIFY_LOCK, "1", timeout=settings.Q_CLUSTER.get("timeout", 300) + 60):
        return "skipped: a verification is already running"
    try:
        return verify(live_bookings(settings.CALSYNC_VERIFY_DAYS)).summary()
    finally:
        cache.delete(VERIFY_LOCK)
