"""Staff decisions for the review queue (the review admin calls these, then replays the booking's event).

Each function records who decided what and when on the booking's `KommoLink`; the next reconcile acts on it.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from bookings.models import Booking
from crm.booking_crm import link_for, set_crm_status
from crm.models import KommoLink, RememberedDeal, marker_token


class ReviewError(ValueError):
    """The decision cannot be applied as asked (the message says why)."""


def _link_or_new(booking: Booking) -> KommoLink:
    link = link_for(booking)
    if link is None:
        link, _ = KommoLink.objects.get_or_create(
            booking=booking, defaults={"marker": marker_token(booking.invitee_uri)}
        )
    return link


def _decided(link: KommoLink, decision: str, user) -> None:
    link.decision = decision
    link.decided_by = user if getattr(user, "pk", None) else None
    link.decided_at = timezone.now()
    link.review_state = KommoLink.ReviewState.RESOLVED


def _refuse_if_written(link: KommoLink, lead_id: int | None = None) -> None:
    if link.lead_id and link.has_writes and link.lead_id != lead_id:
        raise ReviewError(
            f"calsync already wrote to deal {link.lead_id} for this meeting; Kommo cannot move or delete tasks, "
            "so move it by hand in Kommo"
        )


@transaction.atomic
def assign_deal(booking: Booking, lead_id: int, user, *, remember: bool = True) -> KommoLink:
    """Put the meeting into deal `lead_id`. With `remember`, later bookings of the same email with the same
    open deals go there too (a `RememberedDeal` row: visible and reversible)."""
    lead_id = int(lead_id)
    if lead_id <= 0:
        raise ReviewError("a Kommo deal id is a positive number")
    link = _link_or_new(booking)
    _refuse_if_written(link, lead_id)
    if link.lead_id != lead_id:
        link.lead_id = lead_id
        link.lead_responsible_user_id = None  # learned (and the deal checked) by the next reconcile
        link.extra_note_lead_ids = []
    link.match_method = KommoLink.MatchMethod.MANUAL
    link.match_reason = f"assigned by {user or 'staff'}"
    _decided(link, KommoLink.Decision.ASSIGN, user)
    link.save()
    set_crm_status(booking, Booking.CrmStatus.PENDING)
    if remember:
        RememberedDeal.objects.update_or_create(
            email=booking.invitee_email.strip().lower(),
            candidate_key=RememberedDeal.key_for(c["id"] for c in link.candidates),
            defaults={"lead_id": lead_id, "active": True, "created_by": link.decided_by},
        )
    return link


@transaction.atomic
def create_inbound_lead_for(booking: Booking, user) -> KommoLink:
    """Make a new incoming lead for the meeting (also after an uncertain earlier attempt: staff checked)."""
    link = _link_or_new(booking)
    _refuse_if_written(link)
    link.lead_id = None
    link.match_method = ""
    link.match_reason = f"incoming lead requested by {user or 'staff'}"
    link.pending_writes.pop("inbound_lead", None)
    _decided(link, KommoLink.Decision.INBOUND_LEAD, user)
    link.save()
    set_crm_status(booking, Booking.CrmStatus.PENDING)
    return link


@transaction.atomic
def skip(booking: Booking, user) -> KommoLink:
    """Write nothing to Kommo for this meeting."""
    link = _link_or_new(booking)
    link.match_reason = f"skipped by {user or 'staff'}"
    _decided(link, KommoLink.Decision.SKIP, user)
    link.save()
    set_crm_status(booking, Booking.CrmStatus.SKIPPED)
    return link
