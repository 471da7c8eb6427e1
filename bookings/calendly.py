"""Calendly v2 webhook deliveries → typed, immutable structures.

Lenient where Calendly is loose (unknown keys ignored, nullable fields, ``zoom`` and ``zoom_conference``,
``data.id`` as a number or a string, gaps in question positions), strict where calsync depends on a
field: a `PayloadError` names the exact JSON path that is missing or wrong (Zulip's ``.tame()`` habit).
The raw body is always kept by the caller; this module never re-serialises it. Decoding the body safely
is `bookings/calendly_json.py`; which deliveries count as the same one is `bookings/delivery_keys.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bookings.calendly_json import (
    MAX_EMAIL_LENGTH,
    MAX_KIND_LENGTH,
    MAX_URI_LENGTH,
    MAX_YEAR,
    MIN_YEAR,
    PayloadError,
    clip,
    decode_body,
)

INVITEE_CREATED = "invitee.created"
INVITEE_CANCELED = "invitee.canceled"
INVITEE_NO_SHOW_CREATED = "invitee_no_show.created"
INVITEE_NO_SHOW_DELETED = "invitee_no_show.deleted"

# Location types for which Calendly itself made (or is making) the conference and owns its link.
CALENDLY_CONFERENCE_TYPES = frozenset(
    {
        "zoom",
        "zoom_conference",
        "google_conference",
        "microsoft_teams_conference",
        "webex_conference",
        "gotomeeting",
        "gotomeeting_conference",
    }
)


# A conference location with this status has no join link and never will: Calendly made no conference.
CONFERENCE_FAILED = "failed"


def calendly_owns(location_type: str | None, status: str | None) -> bool:
    """Whether Calendly made (or is still making) the conference: a conference type that did not fail."""
    return location_type in CALENDLY_CONFERENCE_TYPES and status != CONFERENCE_FAILED


@dataclass(frozen=True)
class Location:
    type: str | None
    join_url: str | None = None
    status: str | None = None
    conference_id: str | None = None  # data.id, always as a string (Calendly sends numbers for Zoom)
    text: str | None = None  # the free-text `location` of physical/phone/custom/ask_invitee

    @property
    def calendly_owns_conference(self) -> bool:
        return calendly_owns(self.type, self.status)


@dataclass(frozen=True)
class QuestionAnswer:
    question: str
    answer: str
    position: int


@dataclass(frozen=True)
class Host:
    email: str | None
    name: str | None
    user_uri: str | None


@dataclass(frozen=True)
class Cancellation:
    canceled_by: str | None  # a display name, not a URI
    reason: str | None
    canceler_type: str | None  # host | invitee
    created_at: datetime | None


@dataclass(frozen=True)
class ScheduledEvent:
    uri: str
    name: str | None
    status: str | None
    start_time: datetime
    end_time: datetime
    event_type_uri: str | None
    location: Location
    hosts: tuple[Host, ...] = ()
    guest_emails: tuple[str, ...] = ()
    updated_at: datetime | None = None

    @property
    def primary_host(self) -> Host | None:
        return self.hosts[0] if self.hosts else None


@dataclass(frozen=True)
class Invitee:
    uri: str
    event_uri: str
    email: str
    name: str
    first_name: str | None
    last_name: str | None
    status: str | None
    timezone: str | None
    created_at: datetime | None
    updated_at: datetime | None
    questions: tuple[QuestionAnswer, ...]
    tracking: Mapping[str, str] = field(default_factory=dict)
    cancel_url: str | None = None
    reschedule_url: str | None = None
    rescheduled: bool = False
    old_invitee_uri: str | None = None
    new_invitee_uri: str | None = None
    cancellation: Cancellation | None = None
    text_reminder_number: str | None = None
    no_show_created_at: datetime | None = None  # from `no_show {uri, created_at}` when marked
    no_show_uri: str | None = None  # each mark has its own


@dataclass(frozen=True)
class CalendlyDelivery:
    kind: str
    created_at: datetime | None
    created_by: str | None
    # Only for invitee.* kinds; other kinds are stored and ignored, so their payload is not parsed.
    invitee: Invitee | None = None
    # None when the payload had no `scheduled_event`: processing reads it from the API.
    scheduled_event: ScheduledEvent | None = None
    payload_uri: str | None = None


# --- small typed readers ----------------------------------------------------------------------------


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise PayloadError(f"{path}.{key}", f"expected a string, got {type(value).__name__}")
    return value


def _req_str(obj: Mapping[str, Any], key: str, path: str, *, max_length: int | None = None) -> str:
    value = _opt_str(obj, key, path)
    if value is None:
        raise PayloadError(f"{path}.{key}", "required, missing or empty")
    if max_length is not None and len(value) > max_length:
        # A key or a kind cannot be shortened without becoming another one: refuse it.
        raise PayloadError(f"{path}.{key}", f"longer than {max_length} characters")
    return value


def _opt_dict(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PayloadError(f"{path}.{key}", f"expected an object, got {type(value).__name__}")
    return value


def _list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{path}.{key}", f"expected a list, got {type(value).__name__}")
    return value


def parse_timestamp(value: str, path: str = "timestamp") -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise PayloadError(path, f"not an ISO-8601 timestamp: {clip(value)!r}") from None
    if parsed.tzinfo is None:
        raise PayloadError(path, f"timestamp without a time zone: {clip(value)!r}")
    # Year 1 or 9999 parses, then breaks time-zone arithmetic, databases and every later retry.
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not MIN_YEAR <= in_utc.year <= MAX_YEAR:
        raise PayloadError(path, f"timestamp outside the years {MIN_YEAR}-{MAX_YEAR}: {clip(value)!r}")
    return parsed


def _opt_time(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = _opt_str(obj, key, path)
    return parse_timestamp(value, f"{path}.{key}") if value else None


def _req_time(obj: Mapping[str, Any], key: str, path: str) -> datetime:
    return parse_timestamp(_req_str(obj, key, path), f"{path}.{key}")


# --- parts ------------------------------------------------------------------------------------------


def parse_location(raw: Mapping[str, Any] | None, path: str) -> Location:
    if raw is None:
        return Location(type=None)
    data = raw.get("data") if isinstance(raw.get("data"), Mapping) else {}
    conference_id = data.get("id") if data else None
    return Location(
        type=_opt_str(raw, "type", path),
        join_url=_opt_str(raw, "join_url", path),
        status=_opt_str(raw, "status", path),
        conference_id=str(conference_id) if conference_id not in (None, "") else None,
        text=_opt_str(raw, "location", path),
    )


def _parse_questions(items: list[Any], path: str) -> tuple[QuestionAnswer, ...]:
    parsed = []
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            raise PayloadError(item_path, "expected an object")
        position = item.get("position")
        parsed.append(
            QuestionAnswer(
                question=_opt_str(item, "question", item_path) or "",
                answer=_opt_str(item, "answer", item_path) or "",
                position=position if isinstance(position, int) else index,
            )
        )
    # Positions may have gaps (blank optional answers are left out): order by them, never index by them.
    return tuple(sorted(parsed, key=lambda qa: qa.position))


def _parse_cancellation(raw: Mapping[str, Any] | None, path: str) -> Cancellation | None:
    if raw is None:
        return None
    return Cancellation(
        canceled_by=_opt_str(raw, "canceled_by", path),
        reason=_opt_str(raw, "reason", path),
        canceler_type=_opt_str(raw, "canceler_type", path),
        created_at=_opt_time(raw, "created_at", path),
    )


def parse_scheduled_event(raw: Mapping[str, Any], path: str) -> ScheduledEvent:
    hosts = []
    for index, member in enumerate(_list(raw, "event_memberships", path)):
        member_path = f"{path}.event_memberships[{index}]"
        if isinstance(member, Mapping):
            hosts.append(
                Host(
                    email=_opt_str(member, "user_email", member_path),
                    name=_opt_str(member, "user_name", member_path),
                    user_uri=_opt_str(member, "user", member_path),
                )
            )
    guests = tuple(
        g["email"]
        for g in _list(raw, "event_guests", path)
        if isinstance(g, Mapping) and isinstance(g.get("email"), str)
    )
    start = _req_time(raw, "start_time", path)
    end = _req_time(raw, "end_time", path)
    if end < start:
        raise PayloadError(f"{path}.end_time", "ends before it starts")
    return ScheduledEvent(
        uri=_req_str(raw, "uri", path, max_length=MAX_URI_LENGTH),
        name=_opt_str(raw, "name", path),
        status=_opt_str(raw, "status", path),
        start_time=start,
        end_time=end,
        event_type_uri=_opt_str(raw, "event_type", path),
        location=parse_location(_opt_dict(raw, "location", path), f"{path}.location"),
        hosts=tuple(hosts),
        guest_emails=guests,
        updated_at=_opt_time(raw, "updated_at", path),
    )


def parse_invitee(raw: Mapping[str, Any], path: str = "payload") -> tuple[Invitee, ScheduledEvent | None]:
    """The invitee, and its embedded event (None when the payload has no `scheduled_event`).

    Calendly's published 2023 spec examples omit `scheduled_event`; such a payload is accepted and
    processing reads the event from the API by the URI in `event` (`bookings.event_lookup`).
    """
    event_raw = _opt_dict(raw, "scheduled_event", path) or {}
    scheduled_event = parse_scheduled_event(event_raw, f"{path}.scheduled_event") if event_raw else None
    embedded_uri = scheduled_event.uri if scheduled_event else None
    event_value = raw.get("event")
    if isinstance(event_value, Mapping):  # an old v1-style shape; the URI is all we use
        event_uri = _opt_str(event_value, "uri", f"{path}.event") or embedded_uri
    else:
        event_uri = _opt_str(raw, "event", path) or embedded_uri
    if not event_uri:
        raise PayloadError(f"{path}.event", "required when scheduled_event is missing (the event is read by it)")
    tracking_raw = _opt_dict(raw, "tracking", path) or {}
    tracking = {k: v for k, v in tracking_raw.items() if isinstance(v, str) and v}
    # Cancellation sits at the top of the payload; older deliveries only had it inside scheduled_event.
    cancellation = _parse_cancellation(_opt_dict(raw, "cancellation", path), f"{path}.cancellation")
    if cancellation is None:
        cancellation = _parse_cancellation(
            _opt_dict(event_raw, "cancellation", f"{path}.scheduled_event"), f"{path}.scheduled_event.cancellation"
        )
    no_show = _opt_dict(raw, "no_show", path) or {}
    email = _req_str(raw, "email", path, max_length=MAX_EMAIL_LENGTH).strip()
    if "@" not in email:
        raise PayloadError(f"{path}.email", "not an e-mail address")
    if len(event_uri) > MAX_URI_LENGTH:
        raise PayloadError(f"{path}.event", f"longer than {MAX_URI_LENGTH} characters")
    invitee = Invitee(
        uri=_req_str(raw, "uri", path, max_length=MAX_URI_LENGTH),
        event_uri=event_uri,
        email=email,
        name=_opt_str(raw, "name", path) or email,
        first_name=_opt_str(raw, "first_name", path),
        last_name=_opt_str(raw, "last_name", path),
        status=_opt_str(raw, "status", path),
        timezone=_opt_str(raw, "timezone", path),
        created_at=_opt_time(raw, "created_at", path),
        updated_at=_opt_time(raw, "updated_at", path),
        questions=_parse_questions(_list(raw, "questions_and_answers", path), f"{path}.questions_and_answers"),
        tracking=tracking,
        cancel_url=_opt_str(raw, "cancel_url", path),
        reschedule_url=_opt_str(raw, "reschedule_url", path),
        rescheduled=raw.get("rescheduled") is True,
        old_invitee_uri=_opt_str(raw, "old_invitee", path),
        new_invitee_uri=_opt_str(raw, "new_invitee", path),
        cancellation=cancellation,
        text_reminder_number=_opt_str(raw, "text_reminder_number", path),
        no_show_created_at=_opt_time(no_show, "created_at", f"{path}.no_show"),
        no_show_uri=_opt_str(no_show, "uri", f"{path}.no_show"),
    )
    return invitee, scheduled_event


def parse_delivery_data(data: Any) -> CalendlyDelivery:
    """Parse an already-decoded JSON document (used for stored payloads and replays)."""
    if not isinstance(data, Mapping):
        raise PayloadError("$", "expected a JSON object")
    kind = _req_str(data, "event", "$", max_length=MAX_KIND_LENGTH)
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        raise PayloadError("$.payload", "required, expected an object")
    delivery_kw: dict[str, Any] = {
        "kind": kind,
        "created_at": _opt_time(data, "created_at", "$"),
        "created_by": _opt_str(data, "created_by", "$"),
        "payload_uri": _opt_str(payload, "uri", "$.payload"),
    }
    if len(delivery_kw["payload_uri"] or "") > MAX_URI_LENGTH:
        raise PayloadError("$.payload.uri", f"longer than {MAX_URI_LENGTH} characters")
    # invitee_no_show.* deliveries carry the Invitee too (with `no_show` set when marked).
    if kind.startswith(("invitee.", "invitee_no_show.")):
        invitee, scheduled_event = parse_invitee(payload, "$.payload")
        delivery_kw.update(invitee=invitee, scheduled_event=scheduled_event)
    return CalendlyDelivery(**delivery_kw)


def parse_delivery(raw_body: bytes) -> CalendlyDelivery:
    return parse_delivery_data(decode_body(raw_body))
