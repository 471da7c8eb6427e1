"""Bookings about to start that still have no Zoom meeting (for the alert digest, `calsync.alerts`).

The usual cause is the host's daily create/update limit: Zoom refuses until 00:00 UTC, so a meeting
booked for this afternoon may only be made after it. A human can create the meeting by hand, or
move it to another host, in time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.core.cache import cache

from bookings.models import Booking
from conferencing.models import ZoomMeeting
from conferencing.sync import daily_limit_key, needs_zoom_meeting, zoom_configured

# A booking made a moment ago is still being processed: not yet worth an alert.
PROCESSING_GRACE = timedelta(minutes=15)


def bookings_without_meeting(now: datetime, within: timedelta) -> list[tuple[Booking, str]]:
    """(booking, why) for each live booking starting within `within` that wants a meeting and has none."""
    if not zoom_configured():
        return []
    soon = Booking.objects.filter(
        status=Booking.Status.SCHEDULED,
        start_at__gte=now,
        start_at__lte=now + within,
        created_at__lte=now - PROCESSING_GRACE,
    ).order_by("start_at")
    found = []
    for booking in soon[:500]:
        if not needs_zoom_meeting(booking)[0]:
            continue
        meetings = ZoomMeeting.objects.filter(event_uri=booking.event_uri).exclude(status=ZoomMeeting.Status.DELETED)
        if meetings.filter(status=ZoomMeeting.Status.LIVE).exists():
            continue
        found.append((booking, _why(meetings.first())))
    return found


def _why(meeting: ZoomMeeting | None) -> str:
    if meeting is not None:
        until = cache.get(daily_limit_key(meeting.host_user))
        if until is not None and until > time.time():
            reset = datetime.fromtimestamp(until, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
            return f"Zoom's daily create/update limit for host {meeting.host_user} is reached until {reset}"
        return "its creation has not finished"
    return "none was made yet"
