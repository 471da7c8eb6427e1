"""Verify the Kommo Meeting tasks of live bookings against Kommo itself (see bookings.verification).

One `GET /api/v4/tasks?filter[id][]=…` per 250 tasks reads them all. A task is checked only when
calsync's record agrees with the booking (otherwise a sync is still to run and will change it):
- not in the answer → a person deleted it: REPAIR (created again, with a note saying so);
- `is_completed` → a person's decision: LEAVE (recorded as completed, no second task);
- `entity_id` is another deal, or `complete_till` is not the booking's start → RAISE for a person.

Low priority on Kommo's shared request budget: the client's limiter is a `LowPriorityLimiter`, which
takes a slot only when it is free right now and no Calendly event is waiting or being processed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bookings.models import Booking, WebhookEvent
from bookings.verification import LEAVE, RAISE, REPAIR, Finding
from calsync.errors import SyncError
from crm.client import kommo_client
from crm.kommo import KommoClient
from crm.models import KommoLink
from crm.ratelimit import SharedRateLimiter

logger = logging.getLogger(__name__)

SERVICE = "kommo"


class VerificationYielded(SyncError):
    """Webhook work kept the Kommo budget busy longer than CALSYNC_VERIFY_MAX_YIELD: try next run."""


def webhook_work_waiting() -> bool:
    """A Calendly event is queued, being processed, or due for a retry: its sync goes first."""
    status = WebhookEvent.Status
    return WebhookEvent.objects.filter(
        Q(status__in=[status.RECEIVED, status.PROCESSING])
        | Q(status=status.FAILED, next_attempt_at__lte=timezone.now())
    ).exists()


class LowPriorityLimiter:
    """The shared Kommo limiter, used at low priority: only idle slots, and never while webhook work waits."""

    def __init__(
        self,
        shared: SharedRateLimiter,
        *,
        waiting: Callable[[], bool] = webhook_work_waiting,
        max_yield: float = 60.0,
        poll: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.shared = shared
        self.waiting = waiting
        self.max_yield = max_yield
        self.poll = poll
        self.sleep = sleep
        self.clock = clock
        self.yielded = 0.0  # seconds spent stepping aside, for the report

    def acquire(self) -> float:
        start = self.clock()
        while True:
            if not self.waiting() and self.shared.try_acquire_idle():
                waited = self.clock() - start
                self.yielded += waited
                return waited
            if self.clock() - start >= self.max_yield:
                raise VerificationYielded(
                    f"verification stepped aside for webhook work for {self.max_yield:.0f}s; it runs again later",
                    retry_after=self.max_yield,
                )
            self.sleep(self.poll)

    def answered(self) -> None:
        self.shared.answered()

    def pause(self, seconds: float) -> None:
        self.shared.pause(seconds)


def verifier_client() -> KommoClient:
    client = kommo_client()
    shared = client.rate_limiter
    if isinstance(shared, SharedRateLimiter):
        client.rate_limiter = LowPriorityLimiter(shared, max_yield=settings.CALSYNC_VERIFY_MAX_YIELD)
    return client


def _links(bookings: Sequence[Booking]) -> dict[int, KommoLink]:
    return {link.booking_id: link for link in KommoLink.objects.filter(booking__in=[b.pk for b in bookings])}


def check(
    bookings: Sequence[Booking], *, client: KommoClient | None = None, low_priority: bool = True
) -> list[Finding]:
    from crm.sync import is_configured

    if client is None and not is_configured():
        return []
    findings: list[Finding] = []
    to_read: dict[int, tuple[Booking, KommoLink]] = {}
    links = _links(bookings)
    for booking in bookings:
        link = links.get(booking.pk)
        if link is None or link.lead_id is None or link.decision == KommoLink.Decision.SKIP:
            continue
        restored = link.task_state.get("restored_from")
        if link.task_id is None and restored:  # an earlier repair did not finish
            findings.append(_deleted(booking, link, int(restored)))
            continue
        state = link.task_state
        if link.task_id is None or "task" in link.pending_writes or state.get("completed"):
            continue
        if state.get("complete_till") != int(booking.start_at.timestamp()):
            continue  # calsync's own sync has not caught up with the booking yet: it moves the task
        to_read[int(link.task_id)] = (booking, link)
    if not to_read:
        return findings
    client = client or (verifier_client() if low_priority else kommo_client())
    live = {int(t["id"]): t for t in client.get_tasks(to_read)}
    for task_id, (booking, link) in to_read.items():
        task = live.get(task_id)
        if task is None:
            findings.append(_deleted(booking, link, task_id))
            continue
        finding = _compare(booking, link, task)
        if finding is not None:
            findings.append(finding)
    return findings


def _deleted(booking: Booking, link: KommoLink, task_id: int) -> Finding:
    return Finding(
        booking.pk,
        SERVICE,
        "task_deleted",
        REPAIR,
        f"Meeting task {task_id} of deal {link.lead_id} was deleted in Kommo; calsync creates it again",
        f"kommo:task_deleted:{task_id}",
    )


def _compare(booking: Booking, link: KommoLink, task: dict) -> Finding | None:
    task_id = int(task["id"])
    if task.get("entity_type") not in (None, "leads") or int(task.get("entity_id") or 0) != int(link.lead_id):
        where = f"{task.get('entity_type')} {task.get('entity_id')}"
        return Finding(
            booking.pk,
            SERVICE,
            "task_other_deal",
            RAISE,
            f"Meeting task {task_id} now belongs to {where}, not deal {link.lead_id}; left there for a person",
            f"kommo:task_other_deal:{task_id}:{task.get('entity_id')}",
        )
    if task.get("is_completed"):
        return Finding(
            booking.pk,
            SERVICE,
            "task_completed",
            LEAVE,
            f"Meeting task {task_id} was completed by hand in Kommo; left alone (no second task)",
            f"kommo:task_completed:{task_id}",
        )
    due = task.get("complete_till")
    expected = int(booking.start_at.timestamp())
    if due is not None and int(due) != expected:
        when = datetime.fromtimestamp(int(due), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        return Finding(
            booking.pk,
            SERVICE,
            "task_moved",
            RAISE,
            f"Meeting task {task_id} was moved by hand to {when}; the booking starts "
            f"{booking.start_at:%Y-%m-%d %H:%M} UTC. Not moved back: a person decides",
            f"kommo:task_moved:{task_id}:{int(due)}",
        )
    return None


def prepare_repair(booking: Booking, finding: Finding) -> None:
    """Record what a person did, so the ordinary crm reconcile writes only what is missing."""
    link = KommoLink.objects.filter(booking=booking).first()
    if link is None:
        return
    task_id = int(finding.key.split(":")[2])
    if finding.kind == "task_deleted" and link.task_id == task_id:
        link.task_id = None
        link.task_state = {"restored_from": task_id}  # crm.deal_writes writes the "restored" note, then the task
        link.save(update_fields=["task_id", "task_state", "updated_at"])
    elif finding.kind == "task_completed" and link.task_id == task_id:
        link.task_state = {**link.task_state, "completed": True}  # never touched again by calsync
        link.save(update_fields=["task_state", "updated_at"])
