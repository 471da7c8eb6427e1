"""Zoom hygiene: find the meetings calsync made that no live booking needs any more, and delete them.

The reconciler deletes a meeting when its booking is cancelled; this is the safety net for what slipped
through (a cancel that failed for good, a booking deleted by hand, a conference Calendly took over).
A meeting (row `live` or `creating`) is a *ghost* when its scheduled event has:
- no booking at all any more ("booking gone");
- no live invitee, and every booking is cancelled, or rescheduled to a booking that needs no meeting of
  ours or already has its own;
- live invitees only whose conference Calendly now provides.
It is *kept* (and reported) when a reschedule's new booking has not arrived yet or will take the meeting
over, and when live bookings no longer match ZOOM_EVENT_TYPES: their invitees may already hold the link,
so a human decides.

Deleting follows conferencing.sync's conventions: the bookings' sync lease and the event lock are taken
(without waiting: a busy event is left for the next run), the meeting is judged again under them, and
`sync._delete` does the work (a `creating` row is first looked up by its marker; 404/3001 and "ended"
count as done). Meetings in Zoom carrying calsync's marker with no row ("orphans": a lost create never
adopted) are only listed by `scan_orphans`, and deleted only when a human asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings

from bookings.models import Booking
from bookings.steps import booking_sync_lock
from calsync.errors import SyncError
from conferencing import sync
from conferencing.models import ZoomMeeting
from conferencing.zoom import ZoomClient, ZoomError, ZoomNotFound

logger = logging.getLogger(__name__)

Scheduled = Booking.Status.SCHEDULED
Rescheduled = Booking.Status.RESCHEDULED


@dataclass
class Finding:
    """One meeting row the run looked at closely: a ghost (deleted or to delete) or one kept on purpose."""

    row_pk: int
    meeting_id: int | None
    start_at: object
    booking_pk: int | None
    reason: str
    outcome: str = ""
    removed: bool = False
    failed: bool = False

    def line(self) -> str:
        start = f"{self.start_at:%Y-%m-%d %H:%M} UTC" if self.start_at else "no start time"
        booking = f"booking #{self.booking_pk}" if self.booking_pk else "no booking"
        return f"meeting {self.meeting_id or '(creating)'} at {start}, {booking}: {self.reason} → {self.outcome}"


@dataclass
class Orphan:
    """A meeting in Zoom with calsync's marker and no row: made by a create whose answer was lost."""

    meeting_id: int
    host: str
    start_time: str
    marker: str
    booking_pk: int | None
    booking_status: str
    outcome: str = "listed"

    def line(self) -> str:
        booking = f"booking #{self.booking_pk} ({self.booking_status})" if self.booking_pk else "no booking"
        where = f"of {self.host} at {self.start_time}"
        return f"orphan meeting {self.meeting_id} {where}, {self.marker}, {booking} → {self.outcome}"


@dataclass
class HygieneReport:
    dry_run: bool = False
    ghosts: list[Finding] = field(default_factory=list)
    kept: list[Finding] = field(default_factory=list)
    orphans: list[Orphan] | None = None  # None: Zoom was not scanned

    @property
    def removed(self) -> list[Finding]:
        return [f for f in self.ghosts if f.removed]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.ghosts if f.failed]

    def lines(self) -> list[str]:
        return [f.line() for f in [*self.ghosts, *self.kept]] + [o.line() for o in self.orphans or []]

    def summary(self) -> str:
        if self.dry_run:
            text = f"{len(self.ghosts)} meeting(s) would be deleted"
        else:
            text = f"{len(self.removed)} meeting(s) removed"
            if len(self.ghosts) > len(self.removed):
                text += f", {len(self.ghosts) - len(self.removed)} left for the next run ({len(self.failed)} failed)"
        text += f"; {len(self.kept)} kept for a human or the pipeline"
        if self.orphans is not None:
            deleted = sum(o.outcome.startswith(("deleted", "already gone")) for o in self.orphans)
            text += f"; {len(self.orphans)} orphan(s) in Zoom" + (f", {deleted} deleted" if deleted else "")
        return text


# --- judging one meeting ------------------------------------------------------------------------------


def judge(meeting: ZoomMeeting) -> tuple[str | None, str | None]:
    """(why it should be deleted, why it is kept despite looking unneeded); (None, None) when in use."""
    bookings = list(Booking.objects.filter(event_uri=meeting.event_uri))
    live = [b for b in bookings if b.status == Scheduled]
    if live:
        needs = [sync.needs_zoom_meeting(b) for b in live]
        if any(wanted for wanted, _ in needs):
            return None, None
        if all(b.calendly_owns_conference for b in live):
            return f"no live booking needs it: {needs[0][1]}", None
        return None, f"no live booking needs it ({needs[0][1]}), but its invitees may hold the link"
    if not bookings:
        return "its booking is gone", None
    for booking in bookings:
        if booking.status != Rescheduled:
            continue
        successor = booking.chain()[-1]
        if successor.pk == booking.pk or successor.status == Rescheduled:
            return None, f"booking #{booking.pk} was rescheduled; waiting for the new booking"
        if (
            successor.is_live
            and sync.needs_zoom_meeting(successor)[0]
            and sync._open_meeting(successor.event_uri) is None
        ):
            return None, f"booking #{booking.pk} was rescheduled; its new booking #{successor.pk}'s sync takes it over"
    if all(b.status == Booking.Status.CANCELED for b in bookings):
        return "its booking was cancelled" if len(bookings) == 1 else "every booking of its event was cancelled", None
    return "rescheduled to a booking that is cancelled, needs no meeting of ours, or has its own", None


def _finding(meeting: ZoomMeeting, reason: str) -> Finding:
    return Finding(meeting.pk, meeting.meeting_id, meeting.start_at, meeting.booking_id, reason)


# --- the run --------------------------------------------------------------------------------------------


def run(*, dry_run: bool = False, client: ZoomClient | None = None) -> HygieneReport:
    """Judge every open meeting row; delete the ghosts (unless `dry_run`)."""
    report = HygieneReport(dry_run=dry_run)
    zoom = sync._LazyClient(client)
    open_rows = ZoomMeeting.objects.exclude(status=ZoomMeeting.Status.DELETED).order_by("start_at", "pk")
    for meeting in open_rows.iterator():
        reason, kept = judge(meeting)
        if kept:
            report.kept.append(_finding(meeting, kept))
            report.kept[-1].outcome = "kept"
            continue
        if reason is None:
            continue
        finding = _finding(meeting, reason)
        report.ghosts.append(finding)
        if dry_run:
            finding.outcome = "would delete"
        else:
            _remove(meeting, finding, zoom)
    return report


def _remove(meeting: ZoomMeeting, finding: Finding, zoom: Callable[[], ZoomClient]) -> None:
    bookings = list(Booking.objects.filter(event_uri=meeting.event_uri))
    try:
        # The same locks a sync takes, without waiting: a booking being synced now is the pipeline's.
        with booking_sync_lock(bookings, wait=0), sync.event_lock(meeting.event_uri):
            meeting.refresh_from_db()
            if meeting.status == ZoomMeeting.Status.DELETED:
                finding.outcome, finding.removed = "already deleted by a sync", True
                return
            reason, _ = judge(meeting)  # judged again: a delivery may have changed things meanwhile
            if reason is None:
                finding.outcome = "kept: needed again"
                return
            finding.outcome = sync._delete(meeting, zoom)
            finding.meeting_id = meeting.meeting_id
            finding.removed = meeting.status == ZoomMeeting.Status.DELETED
    except ZoomError as exc:
        finding.outcome, finding.failed = f"failed: {exc}", True
    except SyncError as exc:  # BookingBusy, or the event lock is held
        finding.outcome = f"skipped: {exc}; next run"


# --- orphans ----------------------------------------------------------------------------------------------


def scan_orphans(
    *, client: ZoomClient | None = None, hosts: Iterable[str] | None = None, delete: bool = False
) -> list[Orphan]:
    """Upcoming meetings of calsync's hosts that carry its marker but have no open row; delete only if asked."""
    zoom = sync._LazyClient(client)
    if hosts is None:
        hosts = {*ZoomMeeting.objects.values_list("host_user", flat=True).distinct(), settings.ZOOM_DEFAULT_USER}
    open_rows = ZoomMeeting.objects.exclude(status=ZoomMeeting.Status.DELETED)
    known = set(open_rows.exclude(meeting_id=None).values_list("meeting_id", flat=True))
    # A `creating` row's meeting is adopted by its booking's next sync: not an orphan.
    pending = set(open_rows.filter(status=ZoomMeeting.Status.CREATING).values_list("marker", flat=True))
    found: dict[int, Orphan] = {}
    for host in sorted(h for h in hosts if h):
        try:
            meetings = list(zoom().list_upcoming_meetings(host))
        except ZoomNotFound:
            logger.info("zoom hygiene: host %s is not in the Zoom account any more", host)
            continue
        for item in meetings:
            marker = (item.get("agenda") or "").split("\n", 1)[0].strip()
            meeting_id = int(item["id"])
            if not marker.startswith(sync.MARKER_PREFIX) or meeting_id in known or marker in pending:
                continue
            invitee = marker[len(sync.MARKER_PREFIX) :]
            booking = Booking.objects.filter(invitee_uri__endswith=f"/{invitee}").only("pk", "status").first()
            found.setdefault(
                meeting_id,
                Orphan(
                    meeting_id=meeting_id,
                    host=host,
                    start_time=str(item.get("start_time") or "?"),
                    marker=marker,
                    booking_pk=booking.pk if booking else None,
                    booking_status=booking.status if booking else "",
                ),
            )
    orphans = list(found.values())
    if delete:
        for orphan in orphans:
            try:
                existed = zoom().delete_meeting(orphan.meeting_id)
            except ZoomError as exc:
                orphan.outcome = f"failed: {exc}"
            else:
                orphan.outcome = "deleted" if existed else "already gone"
    return orphans
