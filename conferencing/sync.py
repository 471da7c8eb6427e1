"""`reconcile(booking)`: make Zoom match the booking, doing only what is missing.

Desired state, per Calendly scheduled event (`event_uri`): exactly one live Zoom meeting while at least
one live invitee of the event wants one, none otherwise. A one-to-one booking is its own event; a
group event's invitees share one meeting (see docs/conferencing.md for why).

- live, no meeting → create (row `creating` saved before the POST; id and links saved the moment Zoom
  answers); or, for the new half of a reschedule, take over the old booking's meeting with a PATCH.
- live, row still `creating` → the last create's outcome is unknown: adopt the meeting carrying our
  marker among the host's upcoming meetings, else create.
- rescheduled → hand the meeting to the new booking (PATCH: same id, same join link); before the new
  booking is known, keep it. Cancelled → delete (already gone is success), unless other invitees of the
  same group event are still live.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from bookings.models import Booking
from calsync.errors import SyncError
from conferencing.models import ZoomMeeting
from conferencing.zoom import (
    ZoomClient,
    ZoomCreateOutcomeUnknown,
    ZoomDailyLimitReached,
    ZoomError,
    ZoomNotFound,
    zoom_time,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

MARKER_PREFIX = "calsync:"
# IANA names Zoom's timezone list still spells the old way (its list is not full IANA).
ZOOM_TIMEZONE_ALIASES = {
    "Europe/Kyiv": "Europe/Kiev",
    "Asia/Ho_Chi_Minh": "Asia/Saigon",
    "America/Nuuk": "America/Godthab",
    "Asia/Kathmandu": "Asia/Katmandu",
    "Etc/UTC": "UTC",
}
Live = ZoomMeeting.Status.LIVE
Creating = ZoomMeeting.Status.CREATING
Deleted = ZoomMeeting.Status.DELETED


def zoom_configured() -> bool:
    return bool(settings.ZOOM_ACCOUNT_ID and settings.ZOOM_CLIENT_ID and settings.ZOOM_CLIENT_SECRET)


def needs_zoom_meeting(booking: Booking) -> tuple[bool, str]:
    """Whether this booking's event should have a calsync Zoom meeting, and if not, why."""
    if booking.calendly_owns_conference:
        return False, f"Calendly provides the conference ({booking.location_type})"
    allowed = settings.ZOOM_EVENT_TYPES
    if allowed and booking.event_type_name not in allowed and booking.event_type_uri not in allowed:
        return False, f"event type {booking.event_type_name!r} is not in ZOOM_EVENT_TYPES"
    return True, ""


def reconcile(booking: Booking, *, client: ZoomClient | None = None) -> str:
    if not zoom_configured():
        return "Zoom not configured"
    zoom = _LazyClient(client)
    if booking.is_live:
        wanted, why = needs_zoom_meeting(booking)
        if not wanted:
            return f"no Zoom meeting: {why}"
        with event_lock(booking.event_uri):
            return _ensure_meeting(booking, zoom)
    with event_lock(booking.event_uri):
        return _release_meeting(booking, zoom)


MAX_READABLE_KEY = 200


def bounded_key(prefix: str, value: str) -> str:
    """A cache key for a value from a payload: readable when short, a hash of it when long.

    The database cache keeps keys in a 255-character column (PostgreSQL refuses longer ones, and
    `cache.add` then answers False every time, so the lock could never be taken), and memcached
    allows 250: a URI or e-mail address from a payload can be longer.
    """
    if len(prefix) + len(value) <= MAX_READABLE_KEY:
        return prefix + value
    return f"{prefix}sha256:{hashlib.sha256(value.encode('utf-8')).hexdigest()}"


@contextmanager
def event_lock(event_uri: str, *, timeout: int | None = None) -> Iterator[None]:
    """One worker at a time per scheduled event, across processes (shared cache, atomic `add`).

    The pipeline's booking lease does not cover two invitees of one group event; without this, a
    second invitee could see the first one's `creating` row mid-POST and create a duplicate.
    A killed holder's lock expires with the processing lease (CALSYNC_PROCESSING_LEASE), like the
    pipeline's booking lock: by the time the sweeper retries the dead worker's event, it is free.
    """
    timeout = timeout or settings.CALSYNC_PROCESSING_LEASE
    key = bounded_key("zoom:event-lock:", event_uri)
    token = uuid.uuid4().hex
    if not cache.add(key, token, timeout):
        raise SyncError("another worker is syncing this event's Zoom meeting", retry_after=30)
    try:
        yield
    finally:
        if cache.get(key) == token:
            cache.delete(key)


class _LazyClient:
    """Builds the client (and so touches the token) only when a call is really needed."""

    def __init__(self, client: ZoomClient | None):
        self._client = client

    def __call__(self) -> ZoomClient:
        if self._client is None:
            self._client = ZoomClient.from_settings()
        return self._client


# --- live bookings ---------------------------------------------------------------------------------


def _open_meeting(event_uri: str) -> ZoomMeeting | None:
    return ZoomMeeting.objects.filter(event_uri=event_uri).exclude(status=Deleted).first()


def _live_invitees(event_uri: str, *, exclude: Booking | None = None):
    qs = Booking.objects.filter(event_uri=event_uri, status=Booking.Status.SCHEDULED)
    return qs.exclude(pk=exclude.pk) if exclude is not None else qs


def _ensure_meeting(booking: Booking, zoom: Callable[[], ZoomClient]) -> str:
    meeting = _open_meeting(booking.event_uri)
    if meeting is None:
        moved = _take_over_predecessor_meeting(booking, zoom)
        if moved:
            return moved
        if booking.end_at <= timezone.now():
            return "booking is already over; no meeting created"
        return _create(booking, zoom)
    if meeting.status == Creating:
        return _resolve_uncertain_create(booking, meeting, zoom)
    detail = "up to date"
    if meeting.start_at != booking.start_at or meeting.duration != booking.duration_minutes:
        detail = _move(meeting, booking, zoom)  # not seen from Calendly so far; kept for safety
        if meeting.status == Deleted:
            return detail
    if meeting.booking_id is None or not _live_invitees(booking.event_uri).filter(pk=meeting.booking_id).exists():
        meeting.booking = booking
        meeting.save(update_fields=["booking", "updated_at"])
    if _set_join_url(booking, meeting.join_url) and detail == "up to date":
        detail = f"joined shared meeting {meeting.meeting_id}"
    return detail


def _take_over_predecessor_meeting(booking: Booking, zoom: Callable[[], ZoomClient]) -> str | None:
    """The new half of a reschedule: move the old booking's meeting here instead of creating one."""
    chain = booking.chain()
    earlier = chain[: next(i for i, b in enumerate(chain) if b.pk == booking.pk)]
    for previous in reversed(earlier):
        old = _open_meeting(previous.event_uri)
        if old is None:
            continue
        if old.status == Creating or _live_invitees(previous.event_uri).exists():
            # An unresolved create is settled by the old booking's own reconcile; and a group meeting
            # other invitees still use stays where it is.
            return None
        if booking.host_email.strip().lower() != previous.host_email.strip().lower():
            moved = _move_to_new_host(old, booking, zoom)
            if moved:
                return moved
        detail = _move(old, booking, zoom)
        return None if old.status == Deleted else f"{detail} (taken over from booking #{previous.pk})"
    return None


def _move_to_new_host(old: ZoomMeeting, booking: Booking, zoom: Callable[[], ZoomClient]) -> str | None:
    """A reschedule to another host (round-robin) whose new host is a Zoom user: a new meeting under
    them, then the old one deleted. The booking's join link changes, so the deal is told the new one."""
    host = _zoom_host(booking, zoom)
    if host == settings.ZOOM_DEFAULT_USER or host == old.host_user:
        return None  # no Zoom user of their own (or the same one): the meeting stays and is moved
    detail = _create(booking, zoom)
    gone = _delete(old, zoom)
    return f"{detail} under the new host {booking.host_email}; {gone} (of the previous host)"


def _move(meeting: ZoomMeeting, booking: Booking, zoom: Callable[[], ZoomClient]) -> str:
    """PATCH the meeting to the booking's time and hand the row to it; a vanished meeting is marked deleted."""
    body = {
        "topic": _topic(booking),
        "start_time": zoom_time(booking.start_at),
        "duration": booking.duration_minutes,
        "timezone": _zoom_timezone(booking.invitee_timezone),
    }
    try:
        _counted_write(meeting.host_user, lambda: zoom().update_meeting(meeting.meeting_id, body))
    except ZoomNotFound:
        logger.info("zoom meeting %s is gone (deleted in Zoom or expired); a new one is needed", meeting.meeting_id)
        _mark_deleted(meeting)
        return f"meeting {meeting.meeting_id} was gone in Zoom"
    meeting.booking = booking
    meeting.event_uri = booking.event_uri
    meeting.topic = body["topic"]
    meeting.start_at = booking.start_at
    meeting.duration = booking.duration_minutes
    meeting.timezone = body["timezone"]
    meeting.save(update_fields=["booking", "event_uri", "topic", "start_at", "duration", "timezone", "updated_at"])
    _set_join_url(booking, meeting.join_url)
    return f"moved meeting {meeting.meeting_id} to {body['start_time']}"


def _create(booking: Booking, zoom: Callable[[], ZoomClient]) -> str:
    host = _zoom_host(booking, zoom)
    marker = f"{MARKER_PREFIX}{booking.invitee_uri.rstrip('/').rsplit('/', 1)[-1]}"
    try:
        with transaction.atomic():
            # Saved before the POST: if its answer is lost, the next attempt knows to look first.
            meeting = ZoomMeeting.objects.create(
                booking=booking,
                event_uri=booking.event_uri,
                host_user=host,
                marker=marker,
                topic=_topic(booking),
                start_at=booking.start_at,
                duration=booking.duration_minutes,
                timezone=_zoom_timezone(booking.invitee_timezone),
                status=Creating,
            )
    except IntegrityError:
        raise SyncError("another worker is creating the Zoom meeting for this event", retry_after=30) from None
    return _post(meeting, booking, zoom)


def _post(meeting: ZoomMeeting, booking: Booking, zoom: Callable[[], ZoomClient]) -> str:
    try:
        created = _counted_write(
            meeting.host_user, lambda: zoom().create_meeting(meeting.host_user, _meeting_body(booking, meeting.marker))
        )
    except (ZoomCreateOutcomeUnknown, ZoomDailyLimitReached):
        # The row stays `creating`: the next attempt searches for the marker first (after a daily
        # limit, at its reset), and the booking keeps its in-flight record meanwhile.
        raise
    except ZoomError:
        meeting.delete()  # Zoom answered with a refusal: nothing was created
        raise
    _record(meeting, created, start_url=created.get("start_url", ""))
    _set_join_url(booking, meeting.join_url)
    logger.info("zoom: created meeting %s for booking %s", meeting.meeting_id, booking.pk)
    return f"created meeting {meeting.meeting_id}"


def _resolve_uncertain_create(booking: Booking, meeting: ZoomMeeting, zoom: Callable[[], ZoomClient]) -> str:
    found = _find_by_marker(meeting, zoom)
    if found is None:
        logger.info("zoom: no meeting carries marker %s; creating it", meeting.marker)
        return _post(meeting, booking, zoom)
    _record(meeting, found)
    _set_join_url(booking, meeting.join_url)
    logger.warning("zoom: adopted meeting %s found by marker %s (lost create response)", found["id"], meeting.marker)
    return f"adopted meeting {meeting.meeting_id} (the earlier create's answer was lost)"


def daily_limit_key(host: str) -> str:
    """Cache key holding when the host's daily create/update limit resets (unix seconds)."""
    return bounded_key("zoom:daily-limit:", host)


def _counted_write(host: str, call: Callable[[], T]) -> T:
    """A create or update, which count against the host's 100-a-day limit.

    Once Zoom says the day's limit is reached, every worker waits for the reset instead of asking
    again (each extra try is another 429, and the rest of the pipeline reschedules us anyway).
    """
    key = daily_limit_key(host)
    until = cache.get(key)
    if until is not None and until > time.time():
        raise ZoomDailyLimitReached(
            f"Zoom's daily create/update limit for host {host} is reached; waiting for its reset",
            status=429,
            retry_after=until - time.time(),
        )
    try:
        return call()
    except ZoomDailyLimitReached as exc:
        wait = exc.retry_after or 3600
        cache.set(key, time.time() + wait, int(wait) + 1)
        raise


def _find_by_marker(meeting: ZoomMeeting, zoom: Callable[[], ZoomClient]) -> dict | None:
    # The list cuts the agenda to 250 characters, which is why the marker is its first line.
    for candidate in zoom().list_upcoming_meetings(meeting.host_user):
        if (candidate.get("agenda") or "").split("\n", 1)[0].strip() == meeting.marker:
            return candidate
    return None


def _record(meeting: ZoomMeeting, data: dict, *, start_url: str = "") -> None:
    meeting.meeting_id = int(data["id"])
    meeting.uuid = data.get("uuid") or ""
    meeting.join_url = data.get("join_url") or ""
    meeting.start_url = start_url
    meeting.host_id = data.get("host_id") or ""
    meeting.status = Live
    meeting.save(update_fields=["meeting_id", "uuid", "join_url", "start_url", "host_id", "status", "updated_at"])


def _set_join_url(booking: Booking, url: str) -> bool:
    if not url or booking.conference_join_url == url:
        return False
    # A targeted update: this reconciler owns only this one field of the booking.
    Booking.objects.filter(pk=booking.pk).update(conference_join_url=url)
    booking.conference_join_url = url
    return True


# --- bookings that are no longer live ----------------------------------------------------------------


def _release_meeting(booking: Booking, zoom: Callable[[], ZoomClient]) -> str:
    meeting = _open_meeting(booking.event_uri)
    if meeting is None:
        handed = ZoomMeeting.objects.filter(booking__rescheduled_from=booking).exclude(status=Deleted).first()
        return f"meeting {handed.meeting_id} now belongs to the new booking" if handed else "no meeting"
    others = list(_live_invitees(booking.event_uri, exclude=booking)[:1])
    if others:
        if meeting.booking_id == booking.pk:
            meeting.booking = others[0]
            meeting.save(update_fields=["booking", "updated_at"])
        return f"meeting {meeting.meeting_id} kept for the other invitees of the group event"
    if booking.status == Booking.Status.RESCHEDULED:
        successor = booking.chain()[-1]
        if successor.pk == booking.pk or successor.status == Booking.Status.RESCHEDULED:
            return f"rescheduled; meeting {meeting.meeting_id} kept until the new booking arrives"
        if successor.is_live and needs_zoom_meeting(successor)[0]:
            detail = _ensure_meeting(successor, zoom)
            meeting.refresh_from_db()
            if meeting.event_uri != booking.event_uri or meeting.status == Deleted:
                return f"handed to booking #{successor.pk}: {detail}"
        # The new booking needs no meeting of ours (or already has one): this one would be a ghost.
    return _delete(meeting, zoom)


def _delete(meeting: ZoomMeeting, zoom: Callable[[], ZoomClient]) -> str:
    if meeting.status == Creating:
        found = _find_by_marker(meeting, zoom)
        if found is None:
            _mark_deleted(meeting)
            return "no meeting to delete (its create never reached Zoom)"
        _record(meeting, found)
    existed = zoom().delete_meeting(meeting.meeting_id)
    _mark_deleted(meeting)
    return f"deleted meeting {meeting.meeting_id}" if existed else f"meeting {meeting.meeting_id} was already gone"


def _mark_deleted(meeting: ZoomMeeting) -> None:
    meeting.status = Deleted
    meeting.deleted_at = timezone.now()
    meeting.save(update_fields=["status", "deleted_at", "updated_at"])


# --- what we send -----------------------------------------------------------------------------------


def _zoom_host(booking: Booking, zoom: Callable[[], ZoomClient]) -> str:
    """The Calendly host's Zoom user id when they are an active user of the account, else ZOOM_DEFAULT_USER."""
    email = booking.host_email.strip().lower()
    if not email:
        return settings.ZOOM_DEFAULT_USER
    key = bounded_key("zoom:user:", email)
    user_id = cache.get(key)
    if user_id is None:
        user = zoom().get_user(email)
        user_id = str(user["id"]) if user and user.get("status", "active") == "active" else ""
        cache.set(key, user_id, settings.ZOOM_USER_CACHE_SECONDS)  # "" remembers "not in the account"
        if not user_id:
            logger.info("zoom: host %s is not an active Zoom user; using ZOOM_DEFAULT_USER", email)
    return user_id or settings.ZOOM_DEFAULT_USER


def _topic(booking: Booking) -> str:
    return f"{booking.event_type_name or 'Meeting'} with {booking.invitee_name}"[:200]


def _zoom_timezone(name: str) -> str:
    return ZOOM_TIMEZONE_ALIASES.get(name, name) or "UTC"


def _meeting_body(booking: Booking, marker: str) -> dict:
    return {
        "topic": _topic(booking),
        "type": 2,  # scheduled
        "start_time": zoom_time(booking.start_at),
        "duration": booking.duration_minutes,
        "timezone": _zoom_timezone(booking.invitee_timezone),
        # The marker must stay the first line: the list endpoint cuts the agenda to 250 characters.
        "agenda": f"{marker}\nBooked through Calendly; kept in step by calsync.",
        "settings": {
            "waiting_room": settings.ZOOM_WAITING_ROOM,
            "join_before_host": settings.ZOOM_JOIN_BEFORE_HOST,
            "mute_upon_entry": settings.ZOOM_MUTE_UPON_ENTRY,
            "auto_recording": settings.ZOOM_AUTO_RECORDING,
            "approval_type": 2,  # no registration
        },
    }
