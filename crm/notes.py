"""Note and task texts, rendered from `templates/crm/*.txt` (a deployment can override any of them).

Plain text, so autoescaping is off (a join link's `&` must stay `&`). Times are given to the templates as
datetimes already in the invitee's zone and in CALSYNC_TIME_ZONE; the templates format them with
Django's `date` filter, which speaks the deployment's LANGUAGE_CODE.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.template import Engine
from django.templatetags.tz import do_timezone
from django.utils import translation
from django.utils.module_loading import import_string

from bookings.models import Booking


@lru_cache(maxsize=8)
def _engine(dirs: tuple[str, ...]) -> Engine:
    return Engine(dirs=list(dirs), app_dirs=True, autoescape=False)


def _template_dirs() -> tuple[str, ...]:
    extra = [settings.KOMMO_TEMPLATE_DIR] if settings.KOMMO_TEMPLATE_DIR else []
    configured = [str(d) for t in settings.TEMPLATES for d in t.get("DIRS", [])]
    return tuple(str(d) for d in [*extra, *configured])


def _zone(name: str | None, fallback: str) -> zoneinfo.ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return zoneinfo.ZoneInfo(candidate)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def _in(value: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    # do_timezone marks the value so that the `date` filter does not convert it back to TIME_ZONE.
    return do_timezone(value, zone)


def meeting_context(booking: Booking, *, join_url: str | None = None, host: str = "") -> dict:
    team_tz = settings.CALSYNC_TIME_ZONE
    invitee_zone = _zone(booking.invitee_timezone, team_tz)
    team_zone = _zone(team_tz, "UTC")
    context = {
        "booking": booking,
        "event_name": booking.event_type_name or "Meeting",
        "invitee_tz": invitee_zone.key,
        "team_tz": team_zone.key,
        "show_team_time": invitee_zone.key != team_zone.key,
        "start_local": _in(booking.start_at, invitee_zone),
        "end_local": _in(booking.end_at, invitee_zone),
        "start_team": _in(booking.start_at, team_zone),
        "end_team": _in(booking.end_at, team_zone),
        "duration": booking.duration_minutes,
        "host": host or booking.host_name or booking.host_email or "—",
        "join_url": booking.conference_join_url if join_url is None else join_url,
        "answers": [qa for qa in booking.questions if qa.get("answer")],
        # Calendly was to make the conference (Zoom, Meet, …) and failed: the link, if any, is calsync's.
        "conference_failed": booking.calendly_conference_failed,
        "zoom_configured": import_string(settings.CALSYNC_CONFERENCE_CONFIGURED)(),
    }
    if booking.host_name and booking.host_email:
        context["host"] = f"{booking.host_name} <{booking.host_email}>"
    previous = booking.rescheduled_from
    if previous is not None:
        context["previous_start_local"] = _in(previous.start_at, invitee_zone)
        context["previous_start_team"] = _in(previous.start_at, team_zone)
    return context


def render(name: str, context: dict, *, marker: str = "") -> str:
    """Render `crm/<name>.txt`; the marker line is added here so an overridden template cannot drop it."""
    with translation.override(settings.LANGUAGE_CODE):
        text = _engine(_template_dirs()).get_template(f"crm/{name}.txt").render(_context(context))
    text = re.sub(r"\n{3,}", "\n\n", text.strip())
    return f"{text}\n{marker}" if marker else text


def _context(values: dict):
    from django.template import Context

    return Context(values, autoescape=False)
