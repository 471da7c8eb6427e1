"""Verify live bookings against what is in Kommo and Zoom now, not only against calsync's own records.

Each app named in CALSYNC_VERIFIERS provides a module with:
- `check(bookings, *, low_priority) -> list[Finding]`: read the live state in batches, report what drifted;
- `prepare_repair(booking, finding) -> None`: forget (in calsync's records) what a person removed, or
  record a person's decision, so that the ordinary reconcilers put back exactly what is missing.

This module never imports crm or conferencing. A finding is one of three actions:
- REPAIR: something calsync made is gone (a task or a meeting deleted by hand) → made again by running
  the booking's reconcilers under its sync lease (the deal gets a note: restored task, new join link);
- LEAVE: a person's decision (a task completed by hand) → recorded and left alone;
- RAISE: a person moved a task or meeting to another time or deal → recorded and raised for a person,
  never silently moved back.
Every finding is a `SyncDrift` row (once per distinct drift): a line in the booking's timeline, a count
in /metrics (`calsync_drift_total`) and, unless it was simply left alone, an alert in the digest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import import_module
from types import ModuleType

from django.conf import settings
from django.utils import timezone

from bookings.models import Booking, SyncDrift
from bookings.processing import ReplayResult, latest_event_for, replay
from bookings.steps import booking_sync_lock, run_reconcilers
from calsync.errors import BookingBusy

logger = logging.getLogger(__name__)

REPAIR = "repair"
LEAVE = "leave"
RAISE = "raise"


@dataclass(frozen=True)
class Finding:
    booking_id: int
    service: str  # "kommo" | "zoom"
    kind: str  # "task_deleted", "task_completed", "task_moved", "task_other_deal", "meeting_deleted", …
    action: str  # REPAIR | LEAVE | RAISE
    detail: str
    key: str  # the same drift found again on the next run is the same key: recorded once

    def line(self) -> str:
        return f"booking #{self.booking_id}: {self.service} {self.kind} — {self.detail}"


@dataclass
class VerifyReport:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    repaired: int = 0
    raised: int = 0
    left_alone: int = 0
    failed: list[str] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        if self.dry_run:
            return (
                f"checked {self.checked} live booking(s); {len(self.findings)} drift(s) found (dry run: nothing done)"
            )
        text = (
            f"checked {self.checked} live booking(s); {len(self.findings)} drift(s): {self.repaired} repaired, "
            f"{self.raised} raised for a person, {self.left_alone} left alone"
        )
        if self.busy:
            text += f"; {len(self.busy)} booking(s) busy syncing, checked next run"
        if self.failed:
            text += f"; {len(self.failed)} failure(s): " + "; ".join(self.failed)[:500]
        return text


def get_verifiers() -> list[ModuleType]:
    return [import_module(path) for path in settings.CALSYNC_VERIFIERS]


def live_bookings(days: int, *, now: datetime | None = None) -> list[Booking]:
    """Live bookings that start from now to `days` days ahead (earliest first)."""
    now = now or timezone.now()
    qs = Booking.objects.filter(
        status=Booking.Status.SCHEDULED, start_at__gte=now, start_at__lt=now + timedelta(days=days)
    )
    return list(qs.order_by("start_at", "pk"))


def _not_syncing(bookings: Sequence[Booking]) -> list[Booking]:
    """A booking whose sync lease is held is being synced right now: its records are about to change."""
    now = timezone.now()
    return [b for b in bookings if b.sync_lock_expires_at is None or b.sync_lock_expires_at < now]


def verify(bookings: Sequence[Booking], *, dry_run: bool = False, source: str = "verify_sync") -> VerifyReport:
    """Check `bookings` against the live state of every service, then repair / record / raise what drifted."""
    report = VerifyReport(dry_run=dry_run)
    now = timezone.now()
    live = _not_syncing([b for b in bookings if b.is_live and b.end_at > now])  # an ended meeting is history
    report.checked = len(live)
    if not live:
        return report
    verifiers = get_verifiers()
    by_service: dict[str, ModuleType] = {}
    for verifier in verifiers:
        by_service[getattr(verifier, "SERVICE", verifier.__name__)] = verifier
        try:
            # A person's "Sync again" is not background work: only the scheduled run gives way to webhooks.
            report.findings.extend(verifier.check(live, low_priority=source != "resync"))
        except Exception as exc:  # one service down must not stop checking the other
            logger.warning("verification by %s failed: %s", verifier.__name__, exc)
            report.failed.append(f"{verifier.__name__}: {type(exc).__name__}: {exc}"[:300])
    if dry_run:
        return report
    per_booking: dict[int, list[Finding]] = {}
    for finding in report.findings:
        per_booking.setdefault(finding.booking_id, []).append(finding)
    bookings_by_pk = {b.pk: b for b in live}
    for pk, findings in per_booking.items():
        _act(bookings_by_pk[pk], findings, by_service, report, source)
    if report.findings:
        logger.info("verification: %s", report.summary())
    return report


def _act(
    booking: Booking, findings: list[Finding], by_service: dict[str, ModuleType], report: VerifyReport, source: str
) -> None:
    outcome_for = {
        REPAIR: SyncDrift.Outcome.REPAIRED,
        LEAVE: SyncDrift.Outcome.LEFT_ALONE,
        RAISE: SyncDrift.Outcome.RAISED,
    }
    repair_detail = ""
    repair_failed = False
    try:
        with booking_sync_lock([booking], wait=0):  # webhook work on this booking goes first
            for finding in findings:
                if finding.action in (REPAIR, LEAVE):
                    by_service[finding.service].prepare_repair(booking, finding)
            if any(f.action == REPAIR for f in findings):
                steps: list[dict] = []
                failures = run_reconcilers([booking], steps)
                repair_failed = bool(failures)
                repair_detail = "; ".join(f"{s['step']}: {s['detail']}" for s in steps)
    except BookingBusy:
        report.busy.append(booking.pk)
        return
    for finding in findings:
        outcome = outcome_for[finding.action]
        if finding.action == REPAIR and repair_failed:
            outcome = SyncDrift.Outcome.FAILED
        detail = finding.detail + (f" → {repair_detail}" if finding.action == REPAIR and repair_detail else "")
        record(booking, finding, outcome, detail, source)
        if outcome == SyncDrift.Outcome.REPAIRED:
            report.repaired += 1
        elif outcome == SyncDrift.Outcome.LEFT_ALONE:
            report.left_alone += 1
        elif outcome == SyncDrift.Outcome.RAISED:
            report.raised += 1
        else:
            report.failed.append(finding.line())


def record(booking: Booking, finding: Finding, outcome: str, detail: str, source: str) -> SyncDrift:
    """One row per distinct drift (its key); raising it in the digest unless it was left alone on purpose."""
    from calsync.alerts import DRIFT, raise_alert

    drift, created = SyncDrift.objects.get_or_create(
        key=finding.key[:300],
        defaults={
            "booking": booking,
            "service": finding.service,
            "kind": finding.kind,
            "detail": detail[:4000],
            "outcome": outcome,
            "source": source,
        },
    )
    if not created and drift.outcome != outcome:
        drift.outcome = outcome
        drift.detail = detail[:4000]
        drift.save(update_fields=["outcome", "detail", "updated_at"])
    if outcome != SyncDrift.Outcome.LEFT_ALONE:
        raise_alert(
            f"drift:{drift.pk}:{outcome}",
            DRIFT,
            f"booking #{booking.pk} ({booking}): {finding.service} {finding.kind} — {detail[:300]} "
            f"[{drift.get_outcome_display()}] — {_admin_path(booking)}",
        )
    return drift


def _admin_path(booking: Booking) -> str:
    base = settings.CALSYNC_PUBLIC_URL.rstrip("/")
    return f"{base}/admin/bookings/booking/{booking.pk}/change/"


def resync(booking: Booking, *, inline: bool = False) -> ReplayResult | None:
    """Sync one booking again: replay its newest event, which re-applies it and runs every reconciler.

    A live booking is first checked against what is in Kommo and Zoom now (`verify` above):
    a task or meeting deleted by hand is made again, one changed by hand is recorded and raised.
    """
    event = latest_event_for(booking)
    if event is None:
        return None
    if booking.is_live:
        verify([booking], source="resync")
    return replay(event, inline=inline)
