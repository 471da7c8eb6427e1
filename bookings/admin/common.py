"""Small pieces the events and bookings admin share: coloured labels, times with their zone."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html

from bookings.health import HEALTH_COLOURS, SyncHealth

STATUS_COLOURS = {
    "done": "#2e7d32",
    "ignored": "#616161",
    "received": "#1565c0",
    "processing": "#1565c0",
    "failed": "#c62828",
    "scheduled": "#2e7d32",
    "canceled": "#c62828",
    "rescheduled": "#ef6c00",
}


def status_badge(value: str, label: str) -> str:
    colour = STATUS_COLOURS.get(value, "#424242")
    return format_html('<strong style="color:{}">{}</strong>', colour, label)


def health_badge(value: str) -> str:
    health = SyncHealth(value)
    return format_html(
        '<strong class="sync-health sync-health-{}" style="color:{}">{}</strong>',
        health.value,
        HEALTH_COLOURS[health],
        health.label,
    )


def local(dt: datetime | None) -> str:
    """A time in the team's zone, with the zone: "Tue 24 Nov 2026, 13:00 CET"."""
    return timezone.localtime(dt).strftime("%a %d %b %Y, %H:%M %Z") if dt else "—"


def local_short(dt: datetime | None) -> str:
    """The same, short enough for a list column: "24 Nov 2026, 13:00 CET"."""
    return timezone.localtime(dt).strftime("%d %b %Y, %H:%M %Z") if dt else "—"


def local_two_lines(dt: datetime | None) -> str:
    """A list cell: the date above, the time and zone below."""
    if dt is None:
        return "—"
    at = timezone.localtime(dt)
    return format_html("{}<br>{}", at.strftime("%a %d %b %Y"), at.strftime("%H:%M %Z"))


def folded(summary: str, detail: str) -> str:
    """Technical detail folded away under a plain summary (a <details> element)."""
    if not detail:
        return "—"
    return format_html(
        '<details class="technical"><summary>{}</summary><pre style="white-space:pre-wrap">{}</pre></details>',
        summary,
        detail,
    )
