"""Event processing: claim → apply to bookings → run the reconcilers → done | failed (with retry time).

The app owns retries; django-q2 is only the transport. `process_event` never raises for a sync
failure: it records the failure on the event and schedules the next attempt with backoff.
Nothing else writes `WebhookEvent.status`. Here: the state transitions, one event's path, several
waiting events processed together, the sweeper and replay; the reconcilers, how each is run on a
booking, and the booking lease are `bookings/steps.py`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from bookings.calendly_json import PayloadError
from bookings.models import Booking, ProcessingAttempt, WebhookEvent
from bookings.state import apply_event, is_handled_kind
from bookings.steps import (
    Ahead,
    Reconciler,
    booking_sync_lock,
    get_reconcilers,
    known_secrets,
    run_reconcilers,
    run_step,
    short_error,
)
from calsync.errors import SyncError
from calsync.http import redact
from calsync.logctx import bind, log_context
from calsync.metrics import observe_attempt

logger = logging.getLogger(__name__)

Status = WebhookEvent.Status


# --- state transitions ------------------------------------------------------------------------------


def claim(event_id: int) -> bool:
    """Take the event for processing with one conditional UPDATE; False if someone else has it."""
    now = timezone.now()
    return bool(
        WebhookEvent.objects.filter(pk=event_id, status__in=[Status.RECEIVED, Status.FAILED]).update(
            status=Status.PROCESSING,
            attempts=F("attempts") + 1,
            processing_started_at=now,
            next_attempt_at=None,
        )
    )


def retry_delay(attempts: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next automatic attempt, or None when the backoff table is exhausted."""
    backoff = settings.CALSYNC_RETRY_BACKOFF
    if attempts > len(backoff):
        return None
    delay = float(backoff[attempts - 1])
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def mark_done(event: WebhookEvent) -> None:
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.DONE, processed_at=timezone.now(), last_error="", last_traceback="", next_attempt_at=None
    )


def mark_ignored(event: WebhookEvent, reason: str) -> None:
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.IGNORED, processed_at=timezone.now(), last_error=reason, next_attempt_at=None
    )


def mark_failed(event: WebhookEvent, exc: BaseException, *, attempts: int) -> WebhookEvent:
    retryable = getattr(exc, "retryable", True) and not isinstance(exc, PayloadError)
    delay = retry_delay(attempts, getattr(exc, "retry_after", None)) if retryable else None
    next_at = timezone.now() + timedelta(seconds=delay) if delay is not None else None
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.FAILED,
        processed_at=timezone.now(),
        last_error=short_error(exc),
        last_traceback=redact("".join(traceback.format_exception(exc)), *known_secrets())[-20000:],
        next_attempt_at=next_at,
    )
    if next_at is None:
        logger.error("event %s failed and needs attention: %s", event.pk, short_error(exc))
    else:
        logger.warning("event %s failed (attempt %s), retry at %s", event.pk, attempts, next_at.isoformat())
    event.refresh_from_db()
    return event


class _StepsFailed(SyncError):
    def __init__(self, failures: list[tuple[str, BaseException]]):
        message = "; ".join(f"{name}: {short_error(exc)}" for name, exc in failures)
        retry_afters = [getattr(exc, "retry_after", None) for _, exc in failures]
        retry_after = max((r for r in retry_afters if r is not None), default=None)
        super().__init__(message, retry_after=retry_after)
        # Retry unless every failure is permanent: a transient one may heal, and the steps are idempotent.
        self.retryable = any(getattr(exc, "retryable", True) for _, exc in failures)
        self.failures = failures


def process_event(event_id: int, *, trigger: str = "queue") -> str:
    """Process one stored event; return its final status. Safe to call twice, concurrently or not.

    Every log line written meanwhile carries the event id, then its invitee URI and booking id.
    """
    with log_context(event_id=event_id):
        return _process_event(event_id, trigger=trigger)


def _process_event(event_id: int, *, trigger: str) -> str:
    if not claim(event_id):
        current = WebhookEvent.objects.filter(pk=event_id).values_list("status", flat=True).first()
        logger.info("event %s not claimed (status %s)", event_id, current)
        return current or "missing"
    others = _claim_waiting(event_id) if trigger == "queue" else []
    if others:
        return _process_group([event_id, *others], trigger=trigger)
    event = WebhookEvent.objects.get(pk=event_id)
    bind(invitee_uri=event.invitee_uri, booking_id=event.booking_id)
    attempt = ProcessingAttempt.objects.create(event=event, number=event.attempts, trigger=trigger)
    steps: list[dict] = []
    try:
        if not is_handled_kind(event.kind):
            reason = f"calsync does not act on {event.kind!r} deliveries"
            mark_ignored(event, reason)
            _finish(attempt, ProcessingAttempt.Outcome.IGNORED, steps, reason)
            return Status.IGNORED
        bookings = apply_event(event)
        bind(booking_id=event.booking_id)
        steps.append(
            {
                "step": "booking",
                "booking": bookings[0].pk if bookings else None,
                "ok": True,
                "detail": ", ".join(f"#{b.pk} {b.status}" for b in bookings),
            }
        )
        with booking_sync_lock(bookings):
            failures = run_reconcilers(bookings, steps)
        if failures:
            raise _StepsFailed(failures)
    except Exception as exc:
        event = mark_failed(event, exc, attempts=event.attempts)
        _finish(attempt, ProcessingAttempt.Outcome.FAILED, steps, short_error(exc))
        return Status.FAILED
    mark_done(event)
    _finish(attempt, ProcessingAttempt.Outcome.DONE, steps, "")
    logger.info("event %s done", event_id)
    return Status.DONE


# --- several waiting events at once ------------------------------------------------------------------


def _claim_waiting(event_id: int) -> list[int]:
    """Other events waiting in the queue, claimed to be processed with this one (a burst).

    Only when a reconciler can work on several bookings at once (Kommo's batch requests) and
    CALSYNC_BATCH_SIZE allows; a booking on an idle system finds none and goes alone, at once. The
    queue's tasks for the events taken here find them claimed and do nothing."""
    size = settings.CALSYNC_BATCH_SIZE
    if size <= 1 or not any(r.batch for r in get_reconcilers()):
        return []
    waiting = (
        WebhookEvent.objects.filter(status=Status.RECEIVED)
        .exclude(pk=event_id)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [pk for pk in waiting[: size - 1] if claim(pk)]


@dataclass
class _Entry:
    event: WebhookEvent
    attempt: ProcessingAttempt
    steps: list[dict]
    bookings: list[Booking]
    failures: list[tuple[str, BaseException]]


def _process_group(event_ids: list[int], *, trigger: str) -> str:
    """Claimed events processed together; each is finished (done / failed / ignored) on its own."""
    entries: list[_Entry] = []
    outcome: dict[int, str] = {}
    for pk in event_ids:
        event = WebhookEvent.objects.get(pk=pk)
        attempt = ProcessingAttempt.objects.create(event=event, number=event.attempts, trigger=trigger)
        if not is_handled_kind(event.kind):
            reason = f"calsync does not act on {event.kind!r} deliveries"
            mark_ignored(event, reason)
            _finish(attempt, ProcessingAttempt.Outcome.IGNORED, [], reason)
            outcome[pk] = Status.IGNORED
            continue
        try:
            bookings = apply_event(event)
        except Exception as exc:
            mark_failed(event, exc, attempts=event.attempts)
            _finish(attempt, ProcessingAttempt.Outcome.FAILED, [], short_error(exc))
            outcome[pk] = Status.FAILED
            continue
        detail = ", ".join(f"#{b.pk} {b.status}" for b in bookings)
        steps = [{"step": "booking", "booking": bookings[0].pk if bookings else None, "ok": True, "detail": detail}]
        entries.append(_Entry(event, attempt, steps, bookings, []))
    everyone = list({b.pk: b for e in entries for b in e.bookings}.values())
    reconcilers = get_reconcilers()
    try:
        with booking_sync_lock(everyone):
            # A batch's read-ahead (Kommo's contact searches) runs alongside the steps before it (the meetings).
            ahead = {
                i: Ahead(everyone, r.batch.prepare, concurrent=settings.CALSYNC_CONCURRENT_STEPS)
                for i, r in enumerate(reconcilers)
                if r.batch is not None and getattr(r.batch, "prepare", None) is not None and len(everyone) > 1
            }
            for i, reconciler in enumerate(reconcilers):
                if reconciler.batch is not None and len(everyone) > 1:
                    _batch_step(reconciler, entries, everyone, ahead.get(i))
                    continue
                for entry in entries:
                    for booking in entry.bookings:
                        entry.failures += run_step(reconciler, booking, entry.steps)
    except Exception as exc:  # the lease (BookingBusy), the database: every event of the group failed
        for entry in entries:
            entry.failures.append(("processing", exc))
    for entry in entries:
        if entry.failures:
            mark_failed(entry.event, _StepsFailed(entry.failures), attempts=entry.event.attempts)
            _finish(entry.attempt, ProcessingAttempt.Outcome.FAILED, entry.steps, _StepsFailed(entry.failures).args[0])
            outcome[entry.event.pk] = Status.FAILED
        else:
            mark_done(entry.event)
            _finish(entry.attempt, ProcessingAttempt.Outcome.DONE, entry.steps, "")
            outcome[entry.event.pk] = Status.DONE
    logger.info("events %s processed together: %s", event_ids, sorted(set(outcome.values())))
    return outcome[event_ids[0]]


def _batch_step(reconciler: Reconciler, entries: list[_Entry], everyone: list[Booking], ahead: Ahead | None) -> None:
    fresh = {b.pk: b for b in Booking.objects.filter(pk__in=[b.pk for b in everyone])}
    try:
        todo = [fresh[b.pk] for b in everyone if b.pk in fresh]
        results = reconciler.batch(todo, prepared=ahead.get()) if ahead else reconciler.batch(todo)
    except Exception as exc:
        results = {b.pk: exc for b in everyone}
    for entry in entries:
        for booking in entry.bookings:
            result = results.get(booking.pk, "not synced")
            ok = not isinstance(result, BaseException)
            detail = str(result or "up to date") if ok else short_error(result)
            entry.steps.append({"step": reconciler.name, "booking": booking.pk, "ok": ok, "detail": detail})
            if not ok:
                logger.warning("step %s failed for booking %s: %s", reconciler.name, booking.pk, detail)
                entry.failures.append((reconciler.name, result))


def _finish(attempt: ProcessingAttempt, outcome: str, steps: list[dict], error: str) -> None:
    attempt.outcome = outcome
    attempt.steps = steps
    attempt.error = error
    attempt.finished_at = timezone.now()
    attempt.save(update_fields=["outcome", "steps", "error", "finished_at"])
    observe_attempt(attempt.event.kind, outcome, (attempt.finished_at - attempt.started_at).total_seconds())


# --- sweeper and replay -----------------------------------------------------------------------------


@dataclass
class SweepResult:
    requeued: list[int]
    lost_workers: list[int]


def sweep(enqueue: Callable[[int, str], None]) -> SweepResult:
    """Find events that need a (new) attempt and hand them to `enqueue`.

    - `processing` past the lease: its worker died or was killed → failed("worker lost"), due now.
    - `received` past the enqueue grace, or `failed` whose retry time has come → enqueue again.
    Each one picked gets its next sweep time pushed out by the lease, so a slow queue is not flooded.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.CALSYNC_PROCESSING_LEASE)
    lost = list(
        WebhookEvent.objects.filter(status=Status.PROCESSING, processing_started_at__lt=now - lease).values_list(
            "pk", flat=True
        )
    )
    for pk in lost:
        event = WebhookEvent.objects.get(pk=pk)
        started: list = []
        with transaction.atomic():
            changed = WebhookEvent.objects.filter(pk=pk, status=Status.PROCESSING).update(
                status=Status.FAILED,
                last_error="worker lost: processing did not finish within CALSYNC_PROCESSING_LEASE",
                next_attempt_at=now if event.attempts <= len(settings.CALSYNC_RETRY_BACKOFF) else None,
            )
            if changed:
                running = ProcessingAttempt.objects.filter(event_id=pk, outcome=ProcessingAttempt.Outcome.RUNNING)
                started = list(running.values_list("started_at", flat=True))
                running.update(outcome=ProcessingAttempt.Outcome.FAILED, error="worker lost", finished_at=now)
        for started_at in started:
            observe_attempt(event.kind, ProcessingAttempt.Outcome.FAILED, (now - started_at).total_seconds())
    due = list(
        WebhookEvent.objects.filter(
            status__in=[Status.RECEIVED, Status.FAILED], next_attempt_at__isnull=False, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", "status")[:500]
    )
    requeued = []
    for pk, status in due:
        # Push the guard out first: if this enqueue is lost too, the next sweep after the lease finds it.
        if WebhookEvent.objects.filter(pk=pk, status=status, next_attempt_at__lte=now).update(
            next_attempt_at=now + lease
        ):
            enqueue(pk, "retry" if status == Status.FAILED else "sweep")
            requeued.append(pk)
    if lost or requeued:
        logger.info("sweep: %d lost worker(s), %d event(s) re-enqueued", len(lost), len(requeued))
    return SweepResult(requeued=requeued, lost_workers=lost)


@dataclass(frozen=True)
class ReplayResult:
    event_id: int
    outcome: str  # queued | done | failed | ignored | skipped
    detail: str

    def __str__(self) -> str:
        return f"event #{self.event_id}: {self.outcome} — {self.detail}"


def replay(
    event: WebhookEvent, *, inline: bool = False, enqueue: Callable[[int, str], None] | None = None
) -> ReplayResult:
    """Process a stored event again (dj-stripe: a replay is just processing again).

    Used by the admin action, the review queue and `manage.py replay_event`. Idempotent: the
    reconcilers do only what is missing, so replaying a finished event writes nothing new.
    An event being processed right now is left alone.
    """
    with transaction.atomic():
        reset = (
            WebhookEvent.objects.filter(pk=event.pk)
            .exclude(status=Status.PROCESSING)
            .update(
                status=Status.RECEIVED,
                next_attempt_at=timezone.now() + timedelta(seconds=settings.CALSYNC_ENQUEUE_GRACE),
            )
        )
    if not reset:
        return ReplayResult(event.pk, "skipped", "being processed right now; try again in a minute")
    if inline:
        status = process_event(event.pk, trigger="replay")
        event.refresh_from_db()
        detail = event.last_error if status in (Status.FAILED, Status.IGNORED) else "processed again"
        return ReplayResult(event.pk, str(status), detail or str(status))
    if enqueue is None:
        from bookings.queue import enqueue_processing as enqueue
    enqueue(event.pk, "replay")
    return ReplayResult(event.pk, "queued", "queued for processing")


def latest_event_for(booking: Booking) -> WebhookEvent | None:
    """The newest handled event that concerns this booking (what a resync replays)."""
    return (
        WebhookEvent.objects.filter(Q(booking=booking) | Q(invitee_uri=booking.invitee_uri))
        .exclude(status=Status.IGNORED)
        .order_by("-received_at", "-pk")
        .first()
    )
