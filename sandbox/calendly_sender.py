"""Calendly v2 deliveries built, signed and posted the way Calendly does it (https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures).

Pure builders first (``booking``, ``created``, ``canceled``, ``reschedule``, ``group``, ``plan``: plain dicts
shaped exactly like the fixtures in tests/fixtures/calendly/), then ``CalendlySender``, the only part that
talks HTTP: it signs each body (``t=…,v1=…`` over the raw bytes) and POSTs it, with optional delays.
Duplication and order are decided by ``plan`` with a seedable RNG, so chaos runs are reproducible.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bookings.signature import HEADER, signature_header
from calsync.http import build_session
from sandbox.demo import DEMO_HOST_EMAIL, DEMO_HOST_NAME, DEMO_INVITEE_EMAIL, DEMO_INVITEE_NAME

API = "https://api.calendly.com"
SUBSCRIBER_URI = f"{API}/users/1f0e9d8c-7b6a-4c5d-9e4f-3a2b1c0d9e8f"  # created_by: the subscription owner
EVENT_TYPE_URI = f"{API}/event_types/3f6e2d1c-0b9a-4e8d-b7c6-5a4f3e2d1c0b"
HOST_USER_URI = f"{API}/users/6d1f4c2a-8b3e-4f7a-9c5d-2e1b0a9f8c7d"
DEFAULT_QUESTIONS = (
    ("Phone number", "+34 612 345 678"),
    ("What would you like to discuss?", "Pricing for 25 seats and the onboarding plan"),
)
TRACKING_KEYS = ("utm_campaign", "utm_source", "utm_medium", "utm_content", "utm_term", "salesforce_uuid")


def new_uuid(rng: random.Random | None = None) -> str:
    return str(uuid.UUID(int=(rng or random).getrandbits(128), version=4))


@dataclass(frozen=True)
class Booking:
    """One invitee's booking, enough to build every delivery about it."""

    email: str
    name: str
    start: datetime
    invitee_uuid: str
    event_uuid: str
    duration_minutes: int = 30
    event_name: str = "30-min Product Demo"
    host_email: str = DEMO_HOST_EMAIL
    host_name: str = DEMO_HOST_NAME
    location_type: str | None = "custom"
    location_text: str | None = None
    timezone: str = "Europe/Madrid"
    questions: tuple[tuple[str, str], ...] = DEFAULT_QUESTIONS
    tracking: Mapping[str, str] = field(default_factory=dict)
    guests: tuple[str, ...] = ()
    booked_at: datetime | None = None
    group_size: int = 1  # invitees sharing the event (group events); the counter's limit is at least this

    @property
    def uri(self) -> str:
        return f"{self.event_uri}/invitees/{self.invitee_uuid}"

    @property
    def event_uri(self) -> str:
        return f"{API}/scheduled_events/{self.event_uuid}"


def host_name_for(email: str) -> str:
    """The demo host's name for her address; otherwise a name made from the address ("ana.gil@x" → "Ana Gil")."""
    if email.strip().lower() == DEMO_HOST_EMAIL:
        return DEMO_HOST_NAME
    local = email.partition("@")[0].partition("+")[0]
    words = [word for word in re.split(r"[._\-]+", local) if word]
    return " ".join(word.capitalize() for word in words) or email


def booking(
    *,
    email: str = DEMO_INVITEE_EMAIL,
    name: str = DEMO_INVITEE_NAME,
    start: datetime | None = None,
    rng: random.Random | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> Booking:
    """A booking with fresh URIs; `start` defaults to tomorrow 15:00 UTC."""
    now = now or datetime.now(UTC)
    if start is None:
        start = (now + timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0)
    fields.setdefault("booked_at", now)
    return Booking(email=email, name=name, start=start, invitee_uuid=new_uuid(rng), event_uuid=new_uuid(rng), **fields)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _whole_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def location(b: Booking) -> dict[str, Any] | None:
    """``scheduled_event.location`` for the booking's type, shaped as fixtures/calendly/location_variants.json."""
    kind, text = b.location_type, b.location_text
    digits = int(uuid.UUID(b.event_uuid)) % 10**10 + 80_000_000_000  # a stable 11-digit conference id
    if kind is None:
        return None
    if kind in ("zoom", "zoom_conference"):
        dial_in = [
            {"country_name": "US", "number": "+1 646 931 3860", "type": "toll", "country": "US"},
            {"country_name": "US", "city": "New York", "number": "+1 646 558 8656", "type": "toll", "country": "US"},
        ]
        data = {
            "id": digits,
            "settings": {"global_dial_in_numbers": dial_in},
            "extra": {"intl_numbers_url": "https://us06web.zoom.us/u/kbX7QpL2mZ"},
            "password": "482913",
        }
        join_url = f"https://us06web.zoom.us/j/{digits}?pwd=bVqT3xR8yK2nW5pL9cJ7hF4dS1aZ6e.1"
        return {"data": data, "join_url": join_url, "status": "pushed", "type": kind}
    if kind == "google_conference":
        return {"type": kind, "status": "pushed", "join_url": f"https://calendly.com/events/{b.event_uuid}/google_meet"}
    if kind == "microsoft_teams_conference":
        audio = {"conferenceId": str(digits), "dialinUrl": "https://dialin.teams.microsoft.com/x", "tollNumber": "+1"}
        data = {"id": str(digits), "audioConferencing": audio}
        join_url = f"https://teams.microsoft.com/l/meetup-join/{digits}"
        return {"type": kind, "join_url": join_url, "status": "pushed", "data": data}
    if kind == "webex_conference":
        join_url = f"https://organization-slug.webex.com/organization-slug/j.php?MTID=m{digits}"
        return {"type": kind, "status": "pushed", "join_url": join_url, "data": {"id": f"m{digits}", "password": "x"}}
    if kind == "gotomeeting":
        data = {"uniqueMeetingId": digits, "conferenceCallInfo": "US: +1 (123) 456-789"}
        return {
            "type": kind,
            "status": "pushed",
            "join_url": f"https://www.gotomeeting.com/join/{digits}",
            "data": data,
        }
    defaults = {
        "physical": "Calle de Alcalá 42, Madrid",
        "outbound_call": "+34 612 345 678",
        "inbound_call": "+1 415 555 0134",
        "custom": "Online meeting - the video link is emailed after booking",
        "ask_invitee": "Our office, 3rd floor",
    }
    return {"location": text if text is not None else defaults.get(kind), "type": kind}


def _cancellation(by: str, reason: str | None, canceler_type: str, at: datetime) -> dict[str, Any]:
    return {"canceled_by": by, "canceler_type": canceler_type, "created_at": _ts(at), "reason": reason}


def _scheduled_event(b: Booking, *, canceled: dict[str, Any] | None, active_left: int) -> dict[str, Any]:
    booked_at = b.booked_at or b.start - timedelta(days=2)
    ended = canceled is not None and active_left == 0  # a group event stays active for the others
    event: dict[str, Any] = {
        "created_at": _ts(booked_at),
        "end_time": _ts(b.start + timedelta(minutes=b.duration_minutes)),
        "event_guests": [{"created_at": _ts(booked_at), "email": g, "updated_at": _ts(booked_at)} for g in b.guests],
        "event_memberships": [{"user": HOST_USER_URI, "user_email": b.host_email, "user_name": b.host_name}],
        "event_type": EVENT_TYPE_URI,
        "invitees_counter": {"total": b.group_size, "active": active_left, "limit": max(b.group_size, 1)},
        "location": location(b),
        "meeting_notes_html": None,
        "meeting_notes_plain": None,
        "name": b.event_name,
        "start_time": _ts(b.start),
        "status": "canceled" if ended else "active",
        "updated_at": canceled["created_at"] if canceled else _ts(booked_at),
        "uri": b.event_uri,
    }
    return {"cancellation": canceled, **event} if ended else event


def _payload(b: Booking, *, old: str | None, new: str | None, canceled: dict[str, Any] | None, left: int) -> dict:
    booked_at = b.booked_at or b.start - timedelta(days=2)
    first, _, last = b.name.partition(" ")
    questions = [{"answer": a, "position": i, "question": q} for i, (q, a) in enumerate(b.questions)]
    payload: dict[str, Any] = {
        "cancel_url": f"https://calendly.com/cancellations/{b.invitee_uuid}",
        "created_at": _ts(booked_at),
        "email": b.email,
        "event": b.event_uri,
        "first_name": first or None,
        "invitee_scheduled_by": None,
        "last_name": last or None,
        "name": b.name,
        "new_invitee": new,
        "no_show": None,
        "old_invitee": old,
        "payment": None,
        "questions_and_answers": questions,
        "reconfirmation": None,
        "reschedule_url": f"https://calendly.com/reschedulings/{b.invitee_uuid}",
        "rescheduled": new is not None,
        "routing_form_submission": None,
        "scheduled_event": _scheduled_event(b, canceled=canceled, active_left=left),
        "scheduling_method": None,
        "status": "canceled" if canceled else "active",
        "text_reminder_number": None,
        "timezone": b.timezone,
        "tracking": {key: b.tracking.get(key) for key in TRACKING_KEYS},
        "updated_at": canceled["created_at"] if canceled else _ts(booked_at),
        "uri": b.uri,
    }
    if canceled:
        payload = dict(sorted({**payload, "cancellation": canceled}.items()))
    return payload


def created(b: Booking, *, at: datetime | None = None, old_invitee: str | None = None) -> dict[str, Any]:
    """``invitee.created``; `old_invitee` makes it the new half of a reschedule."""
    at = at or b.booked_at or b.start - timedelta(days=2)
    payload = _payload(b, old=old_invitee, new=None, canceled=None, left=b.group_size)
    return {
        "created_at": _whole_seconds(at),
        "created_by": SUBSCRIBER_URI,
        "event": "invitee.created",
        "payload": payload,
    }


def canceled(
    b: Booking,
    *,
    at: datetime | None = None,
    by: str | None = None,
    reason: str | None = "Something came up",
    canceler_type: str = "host",
    new_invitee: str | None = None,
    still_active: int = 0,
) -> dict[str, Any]:
    """``invitee.canceled``: a real cancellation, or (with `new_invitee`) the old half of a reschedule.

    `still_active` is how many other invitees of a group event remain (the event stays active then).
    """
    at = at or datetime.now(UTC)
    who = by or (b.host_name if canceler_type == "host" else b.name)
    cancellation = _cancellation(who, reason, canceler_type, at)
    payload = _payload(b, old=None, new=new_invitee, canceled=cancellation, left=still_active)
    envelope = {"created_at": _whole_seconds(at), "created_by": SUBSCRIBER_URI, "event": "invitee.canceled"}
    return {**envelope, "payload": payload}


def reschedule(
    old: Booking, new_start: datetime, *, at: datetime | None = None, rng: random.Random | None = None
) -> tuple[Booking, dict[str, Any], dict[str, Any]]:
    """The new booking and both halves (cancel of the old invitee, create of the new one under a new event)."""
    at = at or datetime.now(UTC)
    new = replace(old, start=new_start, invitee_uuid=new_uuid(rng), event_uuid=new_uuid(rng), booked_at=at)
    old_half = canceled(old, at=at, by=old.name, reason=None, canceler_type="invitee", new_invitee=new.uri)
    return new, old_half, created(new, at=at, old_invitee=old.uri)


def group(base: Booking, invitees: Sequence[tuple[str, str]], *, rng: random.Random | None = None) -> list[Booking]:
    """Several invitees (email, name) of one group event: same event URI, one invitee URI each."""
    size = len(invitees)
    return [replace(base, email=e, name=n, invitee_uuid=new_uuid(rng), group_size=size) for e, n in invitees]


def plan(
    sequences: Iterable[Sequence[dict[str, Any]]],
    *,
    rng: random.Random | None = None,
    duplicate_rate: float = 0.0,
    shuffle_within: bool = False,
    shuffle_sequences: bool = False,
) -> list[dict[str, Any]]:
    """The delivery order: each sequence (e.g. create + cancel of one booking, or a reschedule's two halves)
    optionally shuffled within, sequences optionally shuffled among themselves, and each delivery repeated
    with probability `duplicate_rate` somewhere after its first copy (Calendly's redeliveries)."""
    rng = rng or random.Random()  # noqa: S311 - test traffic, not secrets
    groups = [list(seq) for seq in sequences]
    if shuffle_sequences:
        rng.shuffle(groups)
    ordered: list[dict[str, Any]] = []
    for seq in groups:
        if shuffle_within:
            rng.shuffle(seq)
        ordered.extend(seq)
    result = list(ordered)
    for delivery in ordered:
        if rng.random() < duplicate_rate:
            first = next(i for i, d in enumerate(result) if d is delivery)
            result.insert(rng.randint(first + 1, len(result)), delivery)
    return result


def encode(delivery: Mapping[str, Any]) -> bytes:
    """The raw body, compact as Calendly sends it. Signed and sent as these exact bytes."""
    return json.dumps(delivery, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_headers(body: bytes, key: str, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json", HEADER: signature_header(body, key, timestamp)}


@dataclass
class SendResult:
    kind: str
    invitee_uri: str
    status: int | None
    answer: str
    elapsed_ms: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class CalendlySender:
    """POSTs deliveries to a webhook URL, each signed at send time like Calendly (a redelivery re-signs)."""

    def __init__(
        self,
        url: str,
        signing_key: str,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url, self._key = url, signing_key
        self.session = session or build_session(timeout=(10.0, 15.0))  # Calendly's own connect/read timeouts
        self._clock, self._sleep = clock, sleep

    def send(self, delivery: Mapping[str, Any]) -> SendResult:
        body = encode(delivery)
        started = time.perf_counter()
        try:
            response = self.session.post(
                self.url, data=body, headers=signed_headers(body, self._key, int(self._clock()))
            )
            status, answer = response.status_code, response.text
        except requests.RequestException as exc:
            status, answer = None, f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        return SendResult(delivery["event"], delivery["payload"]["uri"], status, answer, elapsed)

    def send_all(self, deliveries: Iterable[Mapping[str, Any]], *, delay_s: float = 0.0) -> list[SendResult]:
        results = []
        for index, delivery in enumerate(deliveries):
            if index and delay_s:
                self._sleep(delay_s)
            results.append(self.send(delivery))
        return results
