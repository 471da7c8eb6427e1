"""What `send_test_booking` needs between runs and between its deliveries.

It remembers the bookings it sent last (a JSON file, var/test_bookings.json in the sandbox), so that
``--reschedule`` and ``--cancel`` move or cancel *that* booking, as a person would in Calendly, rather than
a new one. And it waits until calsync has processed a delivery before sending the next step about the same
booking, because Calendly sends a reschedule's or a cancellation's deliveries only when someone acts, long
after the booking itself arrived.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import DatabaseError

from bookings.models import WebhookEvent
from sandbox.calendly_sender import Booking

DATETIME_FIELDS = ("start", "booked_at")
SETTLED = (WebhookEvent.Status.DONE, WebhookEvent.Status.FAILED, WebhookEvent.Status.IGNORED)


def booking_to_json(booking: Booking) -> dict[str, Any]:
    data = asdict(booking)
    for name in DATETIME_FIELDS:
        data[name] = data[name].isoformat() if data[name] else None
    data["tracking"] = dict(booking.tracking)
    return data


def booking_from_json(data: dict[str, Any]) -> Booking:
    known = {f.name for f in fields(Booking)}
    values = {k: v for k, v in data.items() if k in known}
    for name in DATETIME_FIELDS:
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    values["questions"] = tuple(tuple(pair) for pair in values.get("questions") or ())
    values["guests"] = tuple(values.get("guests") or ())
    return Booking(**values)


def remembered(path: Path) -> list[Booking]:
    """The live bookings the last run sent (none when there is no file or it cannot be read)."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        return [booking_from_json(item) for item in items]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def remember(path: Path, bookings: Iterable[Booking]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps([booking_to_json(b) for b in bookings], ensure_ascii=False, indent=1))
    partial.replace(path)


def answered_event_id(answer: str) -> int | None:
    """The stored event's id from calsync's webhook answer (``{"id": …}``), if it gave one."""
    try:
        data = json.loads(answer)
    except ValueError:
        return None
    event_id = data.get("id") if isinstance(data, dict) else None
    return event_id if isinstance(event_id, int) else None


def wait_until_processed(
    event_ids: list[int],
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool | None:
    """Wait until calsync has tried each event at least once. True when it has, False on timeout, None when
    these events are not in this database (the deliveries went to another calsync): nothing to wait for."""
    deadline = clock() + timeout
    while True:
        events = WebhookEvent.objects.filter(pk__in=event_ids)
        try:
            if not event_ids or events.count() < len(set(event_ids)):
                return None
        except DatabaseError:  # no calsync database here at all
            return None
        if not events.exclude(status__in=SETTLED).filter(attempts=0).exists():
            return True
        if clock() >= deadline:
            return False
        sleep(0.2)
