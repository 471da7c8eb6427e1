"""The sync's steps: the reconcilers, how they are run on a booking, and the lease that keeps two workers apart.

A reconciler (`CALSYNC_RECONCILERS`) is one step of the sync: Zoom, Kommo, … `run_reconcilers` runs
each of them on each booking, with their read-ahead (`prepare`) alongside the steps before it, under
`booking_sync_lock`. What an event's processing does with their failures is `bookings/processing.py`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from bookings.models import Booking
from calsync.errors import BookingBusy
from calsync.http import redact
from calsync.logctx import log_context

logger = logging.getLogger(__name__)

ERROR_LIMIT = 2000


def known_secrets() -> list[str]:
    """Every configured secret, to redact from errors and tracebacks before they are recorded."""
    return [*settings.CALENDLY_SIGNING_KEYS, *(getattr(settings, n, "") for n in settings.CALSYNC_SECRET_SETTINGS)]


def short_error(exc: BaseException) -> str:
    """The error as its type and message, secrets redacted, cut to `ERROR_LIMIT` characters."""
    text = f"{type(exc).__name__}: {exc}"
    return redact(text, *known_secrets())[:ERROR_LIMIT]


# --- reconcilers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciler:
    """A step of the sync. A reconciler function may carry a `prepare(booking)` attribute: reads it can
    make ahead (no writes), run alongside the steps before it; its result is passed as `prepared=`."""

    name: str  # the app label: "conferencing", "crm", …
    func: Callable[..., object]

    @property
    def prepare(self) -> Callable[[Booking], object] | None:
        return getattr(self.func, "prepare", None)

    @property
    def batch(self) -> Callable[[list[Booking]], dict[int, object]] | None:
        """`batch(bookings)`: several bookings at once, per booking pk the detail or the exception."""
        return getattr(self.func, "batch", None)


def get_reconcilers() -> list[Reconciler]:
    return [Reconciler(path.split(".")[0], import_string(path)) for path in settings.CALSYNC_RECONCILERS]


class Ahead:
    """A reconciler's `prepare` running in a thread of its own while the steps before it run.

    The steps talk to different APIs (a Zoom meeting being created while Kommo is searched), so running
    them side by side takes the slower one's time instead of the sum. A `prepare` that fails fails its
    reconciler's step with that error, as the same reads would have inside the reconciler."""

    def __init__(self, booking: Booking | list[Booking], prepare: Callable[[Any], object], *, concurrent: bool):
        self.result: object = None
        self.error: BaseException | None = None
        self._booking, self._prepare = booking, prepare
        self._thread = threading.Thread(target=self._run, name="calsync-prepare", daemon=True) if concurrent else None
        if self._thread is not None:
            self._thread.start()

    def _run(self) -> None:
        booking = self._booking
        try:
            if isinstance(booking, list):  # a batch: its log lines carry no single booking
                self.result = self._prepare(booking)
                return
            with log_context(booking_id=booking.pk, invitee_uri=booking.invitee_uri):
                self.result = self._prepare(booking)
        except Exception as exc:
            self.error = exc
        finally:
            if self._thread is not None:
                connections.close_all()  # this thread's connections only

    def get(self) -> object:
        if self._thread is None:
            self._run()
        else:
            self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result


# --- booking lease ----------------------------------------------------------------------------------


@contextmanager
def booking_sync_lock(bookings: Sequence[Booking], *, wait: float | None = None) -> Iterator[None]:
    """Hold a short lease on each booking so two workers never sync the same meeting at once.

    A conditional UPDATE works the same on SQLite and PostgreSQL and keeps no transaction open
    while the reconcilers talk to Kommo and Zoom. A crashed holder's lease simply expires.
    """
    wait = settings.CALSYNC_BOOKING_LOCK_WAIT if wait is None else wait
    token = uuid.uuid4().hex
    lease = timedelta(seconds=settings.CALSYNC_PROCESSING_LEASE)
    pks = sorted({b.pk for b in bookings})
    held: list[int] = []
    deadline = time.monotonic() + wait
    try:
        for pk in pks:
            while True:
                now = timezone.now()
                got = Booking.objects.filter(
                    Q(sync_lock_expires_at__isnull=True) | Q(sync_lock_expires_at__lt=now), pk=pk
                ).update(sync_lock_token=token, sync_lock_expires_at=now + lease)
                if got:
                    held.append(pk)
                    break
                if time.monotonic() >= deadline:
                    raise BookingBusy()
                time.sleep(0.1)
        yield
    finally:
        if held:
            Booking.objects.filter(pk__in=held, sync_lock_token=token).update(
                sync_lock_token="", sync_lock_expires_at=None
            )


def run_reconcilers(bookings: Sequence[Booking], steps: list[dict]) -> list[tuple[str, BaseException]]:
    """Run every reconciler on every booking; one failing does not stop the others.

    A Zoom outage must not keep the meeting out of Kommo: each step is independent and idempotent,
    and a retry runs them all again (those already done find nothing to do).
    """
    failures: list[tuple[str, BaseException]] = []
    reconcilers = get_reconcilers()
    for booking in bookings:
        ahead = {
            i: Ahead(booking, r.prepare, concurrent=settings.CALSYNC_CONCURRENT_STEPS)
            for i, r in enumerate(reconcilers)
            if r.prepare is not None
        }
        for i, reconciler in enumerate(reconcilers):
            fresh = Booking.objects.get(pk=booking.pk)  # each step sees what the previous one recorded
            try:
                with log_context(booking_id=booking.pk, invitee_uri=booking.invitee_uri):
                    if i in ahead:
                        detail = reconciler.func(fresh, prepared=ahead[i].get())
                    else:
                        detail = reconciler.func(fresh)
            except Exception as exc:
                logger.warning("step %s failed for booking %s: %s", reconciler.name, booking.pk, short_error(exc))
                steps.append({"step": reconciler.name, "booking": booking.pk, "ok": False, "detail": short_error(exc)})
                failures.append((reconciler.name, exc))
            else:
                steps.append(
                    {"step": reconciler.name, "booking": booking.pk, "ok": True, "detail": str(detail or "up to date")}
                )
    return failures


def run_step(reconciler: Reconciler, booking: Booking, steps: list[dict]) -> list[tuple[str, BaseException]]:
    """One reconciler on one booking, its outcome appended to `steps`; returns its failure, if any."""
    fresh = Booking.objects.get(pk=booking.pk)
    try:
        with log_context(booking_id=booking.pk, invitee_uri=booking.invitee_uri):
            detail = reconciler.func(fresh)
    except Exception as exc:
        logger.warning("step %s failed for booking %s: %s", reconciler.name, booking.pk, short_error(exc))
        steps.append({"step": reconciler.name, "booking": booking.pk, "ok": False, "detail": short_error(exc)})
        return [(reconciler.name, exc)]
    steps.append({"step": reconciler.name, "booking": booking.pk, "ok": True, "detail": str(detail or "up to date")})
    return []
