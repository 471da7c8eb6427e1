"""Thin django-q2 entry points. The logic lives in `bookings.processing`."""

from __future__ import annotations

import logging

from django.db import transaction
from django_q.tasks import async_task

from bookings import processing

logger = logging.getLogger(__name__)


def enqueue_processing(event_id: int, trigger: str = "queue") -> None:
    """Queue an event for processing once the current transaction commits.

    Enqueueing inside the transaction would let a Redis worker start before the row is visible, and
    would roll the ORM broker's task back with it. If this process dies after the commit and before
    the enqueue, the sweeper finds the `received` row after CALSYNC_ENQUEUE_GRACE.
    """

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
