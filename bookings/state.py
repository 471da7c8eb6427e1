"""Calendly deliveries → Booking rows. Order-independent and idempotent.

Rules (each proven by tests/bookings/test_state.py):
- A booking is keyed by its invitee URI (group events: one booking per invitee).
- Status only moves forward: scheduled → canceled | rescheduled. A late `invitee.created` never revives
  a cancelled booking, and a cancel that arrives before its create makes the booking straight away
  from the cancel's own payload (which carries the whole invitee and event).
- Descriptive fields follow the newest Calendly `updated_at` seen, so a stale delivery never overwrites
  newer data.
- A reschedule is linked by URIs from either half: the old invitee's `new_invitee`, or the new one's
  `old_invitee`. Whichever half comes first, the end state is the same. A pointer is followed only
  within one invitee's bookings, one successor each, no cycle (bookings.reschedule); otherwise the
  booking is processed on its own and flagged for a person.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from django.db import IntegrityError, OperationalError, models, transaction
from django.db.models import Q

from bookings.calendly import (
    INVITEE_CANCELED,
    INVITEE_CREATED,
    INVITEE_NO_SHOW_CREATED,
    INVITEE_NO_SHOW_DELETED,
    CalendlyDelivery,
    Invitee,
    ScheduledEvent,
    parse_delivery_data,
)
from bookings.event_lookup import with_scheduled_event
from bookings.models import Booking, WebhookEvent
from bookings.reschedule import flag, link_refusal

_STATUS_RANK = {Booking.Status.SCHEDULED: 0, Booking.Status.RESCHEDULED: 1, Booking.Status.CANCELED: 1}


def _descriptive_fields(invitee: Invitee, event: ScheduledEvent) -> dict:
    host = event.primary_host
    return {
        "event_uri": event.uri,
        "event_type_uri": event.event_type_uri or "",
        "event_type_name": event.name or "",
        "start_at": event.start_time,
        "end_at": event.end_time,
        "invitee_timezone": invitee.timezone or "",
        "invitee_name": invitee.name,
        "invitee_first_name": invitee.first_name or "",
        "invitee_last_name": invitee.last_name or "",
        "invitee_email": invitee.email,
        "invitee_phone": invitee.text_reminder_number or "",
        "host_email": (host.email or "") if host else "",
        "host_name": (host.name or "") if host else "",
        "guest_emails": list(event.guest_emails),
        "location_type": event.location.type or "",
        "location_text": event.location.text or "",
        "location_status": event.location.status or "",
        "location_join_url": event.location.join_url or "",
        "location_conference_id": event.location.conference_id or "",
        **({"conference_join_url": event.location.join_url or ""} if event.location.calendly_owns_conference else {}),
        "questions": [{"question": q.question, "answer": q.answer, "position": q.position} for q in invitee.questions],
        "tracking": dict(invitee.tracking),
        "cancel_url": invitee.cancel_url or "",
        "reschedule_url": invitee.reschedule_url or "",
    }


TRUNCATION_MARK = "…"


def fit_to_columns(fields: dict) -> dict:
    """Shorten text longer than its Booking column, so a 300-character name is stored, not retried forever.

    Text is cut with a "…" marker; a link that does not fit is dropped (a cut link leads nowhere).
    The keys (invitee and event URIs, e-mail) are bounded by the parser, which refuses longer ones.
    """
    fitted = dict(fields)
    for name, value in fields.items():
        column = Booking._meta.get_field(name)
        limit = getattr(column, "max_length", None)
        if not limit or not isinstance(value, str) or len(value) <= limit:
            continue
        if isinstance(column, models.URLField):
            fitted[name] = ""
        else:
            fitted[name] = value[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return fitted


def _freshness(invitee: Invitee, event: ScheduledEvent) -> datetime | None:
    stamps = [t for t in (invitee.updated_at, event.updated_at) if t is not None]
    return max(stamps) if stamps else None


def _locked_booking(invitee_uri: str) -> Booking | None:
    return Booking.objects.select_for_update().filter(invitee_uri=invitee_uri).first()


def _locked_by(*, exclude: Booking, **match: str) -> Booking | None:
    return Booking.objects.select_for_update().filter(**match).exclude(pk=exclude.pk).first()


def lock_in_order(invitee_uris: Iterable[str | None], pks: Iterable[int] = ()) -> None:
    """Lock every existing booking named here in one statement, in primary-key order.

    The two halves of a reschedule reach the same two rows from opposite ends (the new half locks
    itself then the old booking, the old half the other way round). Taken one by one, two workers'
    locks interleave and PostgreSQL aborts one with "deadlock detected". Taking them all up front in
    one fixed order makes the second worker simply wait; the later per-row locks are then no-ops.
    """
    uris = {uri for uri in invitee_uris if uri}
    pks = set(pks)
    if uris or pks:
        rows = Booking.objects.select_for_update().filter(Q(invitee_uri__in=uris) | Q(pk__in=pks))
        list(rows.order_by("pk").values_list("pk", flat=True))


def upsert_booking(invitee: Invitee, event: ScheduledEvent) -> Booking:
    """Create the booking, or refresh its descriptive fields if this delivery is at least as new."""
    fields = fit_to_columns(_descriptive_fields(invitee, event))
    fresh = _freshness(invitee, event)
    booking = _locked_booking(invitee.uri)
    if booking is None:
        try:
            with transaction.atomic():
                return Booking.objects.create(invitee_uri=invitee.uri, source_updated_at=fresh, **fields)
        except IntegrityError:  # another worker created it between our read and our insert
            booking = _locked_booking(invitee.uri)
            assert booking is not None
    if booking.source_updated_at is None or fresh is None or fresh >= booking.source_updated_at:
        if fresh is not None:
            fields["source_updated_at"] = fresh
        changed = [name for name, value in fields.items() if getattr(booking, name) != value]
        if changed:  # a redelivery or a replay writes nothing
            for name in changed:
                setattr(booking, name, fields[name])
            booking.save(update_fields=[*changed, "updated_at"])
    return booking


def _advance_status(booking: Booking, status: str) -> bool:
    if _STATUS_RANK[status] > _STATUS_RANK[booking.status]:
        booking.status = status
        return True
    # canceled vs rescheduled have the same rank: a reschedule link, once known, wins (it is more specific).
    if booking.status == Booking.Status.CANCELED and status == Booking.Status.RESCHEDULED:
        booking.status = status
        return True
    return False


def _link_reschedule(old: Booking, new: Booking, *, named_by: Booking) -> bool:
    """Record that `old` was moved to `new`. Safe to call repeatedly and from either half.

    Only when `bookings.reschedule.link_refusal` allows it; otherwise nothing is linked and `named_by`,
    the booking whose pointer asked for it, is flagged for a person. True when linked.
    """
    refusal = link_refusal(old, new)
    if refusal is not None:
        flag(named_by, refusal)
        return False
    changed_old = False
    if old.next_invitee_uri != new.invitee_uri:
        old.next_invitee_uri = new.invitee_uri
        changed_old = True
    changed_old |= _advance_status(old, Booking.Status.RESCHEDULED)
    if changed_old:
        old.save(update_fields=["next_invitee_uri", "status", "updated_at"])
    if new.rescheduled_from_id != old.pk or new.previous_invitee_uri != old.invitee_uri:
        new.rescheduled_from = old
        new.previous_invitee_uri = old.invitee_uri
        new.save(update_fields=["rescheduled_from", "previous_invitee_uri", "updated_at"])
    return True


def _link_partner_that_named(booking: Booking, affected: list[Booking], *, as_old: bool) -> None:
    """Link the other half of a reschedule that arrived first and named `booking` (as its old or new invitee).

    Several may name it (only one can be right): each is checked, in the order they arrived.
    """
    field = "previous_invitee_uri" if as_old else "next_invitee_uri"
    partners = Booking.objects.select_for_update().filter(**{field: booking.invitee_uri}).exclude(pk=booking.pk)
    for partner in partners.order_by("pk"):
        if partner.pk in {b.pk for b in affected}:
            continue
        if as_old and _link_reschedule(booking, partner, named_by=partner):
            affected.append(partner)
        elif not as_old and _link_reschedule(partner, booking, named_by=partner):
            affected.insert(0, partner)


def apply_invitee_created(delivery: CalendlyDelivery) -> list[Booking]:
    invitee, event = delivery.invitee, delivery.scheduled_event
    assert invitee is not None and event is not None
    booking = upsert_booking(invitee, event)
    affected = [booking]
    if invitee.old_invitee_uri:
        if booking.previous_invitee_uri != invitee.old_invitee_uri:
            booking.previous_invitee_uri = invitee.old_invitee_uri
            booking.save(update_fields=["previous_invitee_uri", "updated_at"])
        old = _locked_booking(invitee.old_invitee_uri)
        if old is not None and _link_reschedule(old, booking, named_by=booking):
            affected.insert(0, old)
    # The old half may have arrived first and named us; pick up that link too.
    _link_partner_that_named(booking, affected, as_old=False)
    # A late create of a booking that was already moved: the new half (which names us as its old
    # invitee) came first. We are rescheduled, not a second live meeting to book.
    _link_partner_that_named(booking, affected, as_old=True)
    return affected


def apply_invitee_canceled(delivery: CalendlyDelivery) -> list[Booking]:
    invitee, event = delivery.invitee, delivery.scheduled_event
    assert invitee is not None and event is not None
    booking = upsert_booking(invitee, event)
    cancellation = invitee.cancellation
    if cancellation is not None:
        who = fit_to_columns(
            {"canceled_by": cancellation.canceled_by or "", "canceler_type": cancellation.canceler_type or ""}
        )
        booking.canceled_by = who["canceled_by"]
        booking.canceler_type = who["canceler_type"]
        booking.cancel_reason = cancellation.reason or ""
        booking.canceled_at = cancellation.created_at
    if booking.canceled_at is None:
        booking.canceled_at = delivery.created_at
    affected = [booking]
    if invitee.rescheduled and invitee.new_invitee_uri:
        if booking.next_invitee_uri in ("", invitee.new_invitee_uri):
            booking.next_invitee_uri = invitee.new_invitee_uri
        else:  # already linked to another new booking: that link stands
            flag(
                booking,
                f"its cancellation names {invitee.new_invitee_uri} as the new booking, but it was already "
                f"moved to {booking.next_invitee_uri}",
            )
        _advance_status(booking, Booking.Status.RESCHEDULED)
        booking.save()
        new = _locked_booking(invitee.new_invitee_uri)
        if new is not None and _link_reschedule(booking, new, named_by=booking):
            affected.append(new)
    else:
        _advance_status(booking, Booking.Status.CANCELED)
        booking.save()
    # The new half may have arrived first and named us as its old invitee.
    _link_partner_that_named(booking, affected, as_old=True)
    return affected


def apply_no_show(delivery: CalendlyDelivery) -> list[Booking]:
    """Marked or undone: keep both times, so whichever delivery comes last the newer one wins."""
    invitee, event = delivery.invitee, delivery.scheduled_event
    assert invitee is not None and event is not None
    booking = upsert_booking(invitee, event)
    if delivery.kind == INVITEE_NO_SHOW_CREATED:
        when = invitee.no_show_created_at or delivery.created_at
        field_name = "no_show_at"
    else:
        when = delivery.created_at or invitee.updated_at
        field_name = "no_show_undone_at"
    current = getattr(booking, field_name)
    if when is not None and (current is None or when > current):
        setattr(booking, field_name, when)
        booking.save(update_fields=[field_name, "updated_at"])
    return [booking]


# Dispatch by delivery kind (dj-stripe's habit). Kinds not listed are stored as `ignored`.
HANDLERS: dict[str, Callable[[CalendlyDelivery], list[Booking]]] = {
    INVITEE_CREATED: apply_invitee_created,
    INVITEE_CANCELED: apply_invitee_canceled,
    INVITEE_NO_SHOW_CREATED: apply_no_show,
    INVITEE_NO_SHOW_DELETED: apply_no_show,
}


def is_handled_kind(kind: str) -> bool:
    return kind in HANDLERS


def handled_kinds() -> tuple[str, ...]:
    """Every delivery kind calsync acts on: what a webhook subscription must ask Calendly for."""
    return tuple(HANDLERS)


T = TypeVar("T")
DEADLOCK_RETRIES = 3


def retry_on_deadlock(fn: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run a transaction again when PostgreSQL aborted it as a deadlock victim (SQLSTATE 40P01).

    Locks are taken in primary-key order, but a reschedule half that commits while the other half's
    transaction is already running can still be found (and locked) after its lower-numbered partner.
    The steps are idempotent, so running the whole transaction again is safe.
    """
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return fn()
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "40P01" or attempt == DEADLOCK_RETRIES - 1:
                raise
            sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def relink(bookings: list[Booking]) -> list[Booking]:
    return retry_on_deadlock(lambda: _relink(bookings))


def _relink(bookings: list[Booking]) -> list[Booking]:
    """Link each booking to reschedule partners that exist now; return the list with any partner added.

    Runs in its own transaction after the event's transaction committed. When both halves of a
    reschedule are processed at the same moment by two workers, neither transaction can see the
    other's new row; but whichever commits last is guaranteed to see both in this second pass.
    """
    result = list(bookings)
    with transaction.atomic():
        uris = [u for b in bookings for u in (b.previous_invitee_uri, b.next_invitee_uri)]
        partners = Booking.objects.filter(
            Q(previous_invitee_uri__in=[b.invitee_uri for b in bookings])
            | Q(next_invitee_uri__in=[b.invitee_uri for b in bookings])
        ).values_list("pk", flat=True)
        lock_in_order(uris, [*(b.pk for b in bookings), *partners])
        for booking in bookings:
            booking = Booking.objects.select_for_update().get(pk=booking.pk)
            if booking.rescheduled_from_id is None:
                # Our old half by the URI we name, or one that names us as its new invitee.
                old = _locked_booking(booking.previous_invitee_uri) if booking.previous_invitee_uri else None
                named_by = booking
                if old is None:
                    old = named_by = _locked_by(next_invitee_uri=booking.invitee_uri, exclude=booking)
                if old is not None and _link_reschedule(old, booking, named_by=named_by):
                    result.insert(0, old)
            new = _locked_booking(booking.next_invitee_uri) if booking.next_invitee_uri else None
            named_by = booking
            if new is None:
                new = named_by = _locked_by(previous_invitee_uri=booking.invitee_uri, exclude=booking)
            if (
                new is not None
                and new.rescheduled_from_id != booking.pk
                and _link_reschedule(booking, new, named_by=named_by)
            ):
                result.append(new)
    seen: set[int] = set()
    return [b for b in result if not (b.pk in seen or seen.add(b.pk))]


def apply_event(event: WebhookEvent) -> list[Booking]:
    """Apply a stored event to its booking(s); return the bookings to sync (with reschedule partners)."""
    delivery = with_scheduled_event(parse_delivery_data(event.payload))
    handler = HANDLERS[delivery.kind]
    bookings = retry_on_deadlock(lambda: _apply(event, delivery, handler))
    bookings = relink(bookings)
    # Fresh copies: the reconcilers must see every link and status written above.
    return list(Booking.objects.filter(pk__in=[b.pk for b in bookings]).order_by("start_at", "pk"))


def _apply(event: WebhookEvent, delivery, handler) -> list[Booking]:
    with transaction.atomic():
        invitee = delivery.invitee
        if invitee is not None:
            partners = Booking.objects.filter(
                Q(previous_invitee_uri=invitee.uri) | Q(next_invitee_uri=invitee.uri)
            ).values_list("pk", flat=True)
            lock_in_order([invitee.uri, invitee.old_invitee_uri, invitee.new_invitee_uri], partners)
        bookings = handler(delivery)
        if bookings:
            # The event's own booking is the one whose invitee URI it carries.
            own = next((b for b in bookings if b.invitee_uri == event.invitee_uri), bookings[0])
            WebhookEvent.objects.filter(pk=event.pk).update(booking=own)
            event.booking = own
    return bookings
