"""Handing a stored event to the worker queue (django-q2), after the transaction that stored it commits.

Kept apart from `bookings.tasks` (the worker's entry points) so that intake and the pipeline can queue
work without importing the module the worker imports them from.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

PROCESS_TASK = "bookings.tasks.process_event"


def enqueue_processing(event_id: int, trigger: str = "queue") -> None:
    """Queue an event for processing once the current transaction commits.

    Enqueueing inside the transaction would let a Redis worker start before the row is visible, and
    would roll the ORM broker's task back with it. If this process dies after the commit and before
    the enqueue, the sweeper finds the `received` row after CALSYNC_ENQUEUE_GRACE.
    """

    def _enqueue() -> None:
        try:
            async_task(
                PROCESS_TASK,
                event_id,
                trigger,
                group="calendly",
                task_name=f"calendly-event-{event_id}",
            )
        except Exception:  # the broker is down: the row is safe, the sweeper retries the enqueue
            logger.exception("could not enqueue event %s; the sweeper will pick it up", event_id)

    transaction.on_commit(_enqueue)
