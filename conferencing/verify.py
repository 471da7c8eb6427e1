"""Verify the Zoom meetings of live bookings against Zoom itself (see bookings.verification).

Reads in batches: each host's upcoming meetings are listed (`type=upcoming`, `page_size` 300, every
`next_page_token` followed) instead of one GET per meeting; a host with a single meeting to check gets
that one GET instead. A meeting missing from a list is confirmed with its own GET before anything is done.
- gone (404) → a person deleted it: REPAIR (a new meeting is made; the deal gets a note with the new link);
- `start_time` is not the booking's start → a person moved it: RAISE, never moved back silently.
A meeting is checked only when calsync's record agrees with the booking (otherwise a sync is pending).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from bookings.models import Booking, SyncDrift
from bookings.verification import RAISE, REPAIR, Finding
from conferencing import sync
from conferencing.models import ZoomMeeting
from conferencing.zoom import ZoomClient, ZoomError, ZoomNotFound

logger = logging.getLogger(__name__)

SERVICE = "zoom"


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _to_check(bookings: Sequence[Booking]) -> tuple[dict[int, tuple[Booking, ZoomMeeting]], list[Finding]]:
    """Meetings to read (one booking each, a group event's invitees share one) and repairs left unfinished."""
    wanted = [b for b in bookings if sync.needs_zoom_meeting(b)[0]]
    rows = ZoomMeeting.objects.filter(event_uri__in={b.event_uri for b in wanted}).exclude(status=sync.Deleted)
    open_by_event = {m.event_uri: m for m in rows}
    meetings: dict[int, tuple[Booking, ZoomMeeting]] = {}
    unfinished: list[Finding] = []
    for booking in wanted:
        meeting = open_by_event.get(booking.event_uri)
        if meeting is None:
            failed = SyncDrift.objects.filter(
                booking=booking, service=SERVICE, kind="meeting_deleted", outcome=SyncDrift.Outcome.FAILED
            ).first()
            if failed is not None:  # an earlier repair did not finish: try again
                unfinished.append(Finding(booking.pk, SERVICE, "meeting_deleted", REPAIR, failed.detail, failed.key))
            continue
        if meeting.status != sync.Live or meeting.meeting_id is None or meeting.meeting_id in meetings:
            continue
        if meeting.start_at != booking.start_at:
            continue  # calsync's own sync has not caught up with the booking yet: it moves the meeting
        meetings[meeting.meeting_id] = (booking, meeting)
    return meetings, unfinished


def check(bookings: Sequence[Booking], *, client: ZoomClient | None = None, low_priority: bool = True) -> list[Finding]:
    """`low_priority` concerns Kommo's shared budget only; Zoom's per-second limits leave room for both."""
    if client is None and not sync.zoom_configured():
        return []
    meetings, findings = _to_check(bookings)
    if not meetings:
        return findings
    client = client or ZoomClient.from_settings()
    by_host: dict[str, list[int]] = {}
    for meeting_id, (_, meeting) in meetings.items():
        by_host.setdefault(meeting.host_user, []).append(meeting_id)
    for host, ids in by_host.items():
        try:
            seen = _read_host(client, host, ids)
        except ZoomError as exc:
            logger.warning("verification: could not read the meetings of Zoom user %s: %s", host, exc)
            continue
        for meeting_id in ids:
            booking, _ = meetings[meeting_id]
            finding = _compare(booking, meeting_id, seen.get(meeting_id))
            if finding is not None:
                findings.append(finding)
    return findings


def _read_host(client: ZoomClient, host: str, ids: list[int]) -> dict[int, dict | None]:
    """meeting id → what Zoom has now (None: gone)."""
    seen: dict[int, dict | None] = {}
    if len(ids) > 1:
        wanted = set(ids)
        for item in client.list_upcoming_meetings(host):
            if int(item.get("id") or 0) in wanted:
                seen[int(item["id"])] = item
    for meeting_id in ids:
        if meeting_id in seen:
            continue
        try:
            seen[meeting_id] = client.get_meeting(meeting_id)
        except ZoomNotFound:
            seen[meeting_id] = None
    return seen


def _compare(booking: Booking, meeting_id: int, live: dict | None) -> Finding | None:
    if live is None:
        return Finding(
            booking.pk,
            SERVICE,
            "meeting_deleted",
            REPAIR,
            f"Zoom meeting {meeting_id} was deleted in Zoom; calsync makes a new one and tells the deal its link",
            f"zoom:meeting_deleted:{meeting_id}",
        )
    start = _parse(live.get("start_time"))
    if start is not None and start != booking.start_at:
        return Finding(
            booking.pk,
            SERVICE,
            "meeting_moved",
            RAISE,
            f"Zoom meeting {meeting_id} was moved by hand to {start:%Y-%m-%d %H:%M} UTC; the booking starts "
            f"{booking.start_at:%Y-%m-%d %H:%M} UTC. Not moved back: a person decides",
            f"zoom:meeting_moved:{meeting_id}:{live.get('start_time')}",
        )
    return None


def prepare_repair(booking: Booking, finding: Finding) -> None:
    """A meeting deleted by hand: mark its row deleted, so conferencing.sync makes a new one."""
    if finding.kind != "meeting_deleted":
        return
    meeting_id = int(finding.key.split(":")[2])
    meeting = ZoomMeeting.objects.filter(meeting_id=meeting_id, status=sync.Live).first()
    if meeting is not None:
        sync._mark_deleted(meeting)
