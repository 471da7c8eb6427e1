"""Zoom's meeting fields, for the Zoom emulator: its error body, its UTC time format, and the fields a create
or update may set, checked as Zoom does (300 "Validation Failed." naming each bad field).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.emulator import Response, json_response

ISO = "%Y-%m-%dT%H:%M:%SZ"
PATCHABLE = {"agenda", "duration", "password", "pre_schedule", "settings", "start_time", "timezone", "topic", "type"}


def zoom_error(status: int, code: int, message: str, **headers: str) -> Response:
    return json_response(status, {"code": code, "message": message}, **headers)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(ISO)


def validated_fields(body: Any, *, creating: bool, now: float) -> dict[str, Any] | Response:
    """The fields to store, or Zoom's 300 "Validation Failed." naming each bad field."""
    if not isinstance(body, Mapping):
        return zoom_error(400, 300, "Request Body should be a valid JSON object.")
    fields = {k: body[k] for k in PATCHABLE if k in body}
    errors = []
    if not isinstance(fields.get("topic", ""), str) or len(fields.get("topic", "")) > 200:
        errors.append("topic")
    if not isinstance(fields.get("agenda", ""), str) or len(fields.get("agenda", "")) > 2000:
        errors.append("agenda")
    if fields.get("type", 2) not in (1, 2, 3, 8):
        errors.append("type")
    if not isinstance(fields.get("duration", 0), int) or fields.get("duration", 0) < 0:
        errors.append("duration")
    password = fields.get("password")
    if password is not None and (not isinstance(password, str) or len(password) > 10):
        errors.append("password")
    if "start_time" in fields:
        start = parse_start(fields["start_time"], fields.get("timezone"))
        if start is None:
            errors.append("start_time")
        else:
            fields["start_time"] = _iso(start)
    if errors:
        invalid = [{"field": f, "message": "Invalid field."} for f in errors]
        body = {"code": 300, "message": "Validation Failed.", "errors": invalid}
        return json_response(400, body)
    if creating:
        fields.setdefault("start_time", _iso(datetime.fromtimestamp(now, UTC)))
    return fields


def parse_start(value: Any, zone: Any) -> datetime | None:
    """``…Z`` is UTC; a bare wall-clock time is read in `timezone` (or UTC), as Zoom does."""
    if not isinstance(value, str):
        return None
    for pattern in (ISO, "%Y-%m-%dT%H:%M:%S"):
        try:
            parsed = datetime.strptime(value, pattern)
        except ValueError:
            continue
        if pattern == ISO:
            return parsed.replace(tzinfo=UTC)
        try:
            return parsed.replace(tzinfo=ZoneInfo(zone) if isinstance(zone, str) and zone else UTC)
        except (ZoneInfoNotFoundError, ValueError):
            return parsed.replace(tzinfo=UTC)
    return None
