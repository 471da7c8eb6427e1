"""Handing a stored event to the worker queue (django-q2), after the transaction that stored it commits.

Kept apart from `bookings.tasks` (the worker's entry points) so that intake and the pipeline can queue
work without importing the module the worker imports them from.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

PROCESS_TASK = "bookings.tasks.process_event"


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
        async_task(PROCESS_TASK, event_id, trigger, group="calendly", task_name=f"calendly-event-{event_id}")
        return

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
