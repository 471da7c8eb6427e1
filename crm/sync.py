"""`reconcile(booking)`: bring the booking's Kommo deal in line with the booking, writing only what is missing.

`BookingSync` chooses the deal first (the one the booking names, the invitee's, one a person assigned,
or a new incoming lead; else the booking waits for review), then writes what the deal should still show
through its base, `DealWriter` (`crm/deal_writes.py`: the notes and task, each written once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from bookings.models import Booking
from crm.booking_crm import CrmSettings, link_for, set_crm_status
from crm.client import kommo_client
from crm.deal_writes import DealWriter, QueuedWrites
from crm.kommo import KommoClient, KommoUncertainWrite, contact_lead_ids
from crm.matching import (
    INBOUND_LEAD,
    REVIEW,
    ExplicitDealId,
    choose_deal,
    deal_id_from_tracking,
    open_leads,
    parse_deal_id,
)
from crm.models import KommoLink, RememberedDeal

logger = logging.getLogger(__name__)


def default_client() -> KommoClient:
    return kommo_client()


def is_configured() -> bool:
    """A long-lived token, or an OAuth connection made in the admin (crm.oauth)."""
    from crm.oauth import is_connected

    return bool(settings.KOMMO_BASE_URL and settings.KOMMO_ACCESS_TOKEN) or is_connected()


def reconcile(booking: Booking, *, client: KommoClient | None = None, prepared: Lookup | None = None) -> str:
    """The CALSYNC_RECONCILERS entry point: a short summary of what was done.

    `prepared`: the deal lookup `prepare` made ahead (while the meeting was being created), if any."""
    if client is None:
        if not is_configured():
            return "Kommo not configured"
        client = default_client()
    return BookingSync(booking, client, prepared=prepared).run()


@dataclass(frozen=True)
class Lookup:
    """What choosing the deal reads from Kommo: the invitee's contacts and every deal they or the booking name."""

    email: str
    explicit: list[ExplicitDealId]
    contacts: list[dict]
    fetched: list[dict]


def explicit_deal_ids(booking: Booking, cfg: CrmSettings) -> list[ExplicitDealId]:
    """The deals the booking names itself: an answer to the deal-id question, a tracking (UTM) field."""
    explicit: list[ExplicitDealId] = []
    answer = booking.answer_to(cfg.deal_id_question) if cfg.deal_id_question else None
    if answer:
        explicit.append(ExplicitDealId("deal_id_answer", answer, parse_deal_id(answer)))
    utm = deal_id_from_tracking(booking.tracking, cfg.utm_field, cfg.utm_prefix) if cfg.utm_field else None
    if utm:
        explicit.append(utm)
    return explicit


def lookup(booking: Booking, cfg: CrmSettings, client: KommoClient) -> Lookup:
    explicit = explicit_deal_ids(booking, cfg)
    ids = {e.lead_id for e in explicit if e.lead_id is not None}
    # Two requests whatever was named: the invitee's contacts (with their deal ids), then every deal
    # in one list: theirs and the named ones (with their contacts, to check a named deal is theirs).
    contacts = client.find_contacts_by_email(booking.invitee_email)
    lead_ids = {i for c in contacts for i in contact_lead_ids(c)}
    fetched = client.get_leads(lead_ids | ids, with_contacts=bool(ids)) if lead_ids | ids else []
    return Lookup(booking.invitee_email, explicit, contacts, fetched)


def prepare(booking: Booking) -> Lookup | None:
    """Read ahead what choosing the deal needs, for a booking whose deal is not chosen yet.

    Only reads (no write, no record): processing may run it alongside the other reconcilers (the Zoom
    meeting is being created meanwhile; the note needs its join link, the lookup does not). `reconcile`
    uses it if it still fits, and looks again itself otherwise."""
    if not is_configured() or not booking.is_live or booking.rescheduled_from_id:
        return None
    if link_for(booking) is not None:  # chosen before, or waiting for staff: nothing to read ahead
        return None
    return lookup(booking, CrmSettings.load(), default_client())


# The pipeline's optional hooks (`Reconciler` in bookings.steps): a read-ahead that may run alongside the other
# reconcilers. The batch hook (several bookings in one request each) is attached by crm.apps, because
# crm.batching builds on this module.
reconcile.prepare = prepare  # type: ignore[attr-defined]


class BookingSync(DealWriter):
    def __init__(
        self,
        booking: Booking,
        client: KommoClient,
        cfg: CrmSettings | None = None,
        prepared: Lookup | None = None,
        batch: QueuedWrites | None = None,
    ):
        super().__init__(booking, client, cfg, batch)
        self.prepared = prepared

    # --- entry -------------------------------------------------------------------------------------

    def run(self) -> str:
        b = self.b
        if b.status == Booking.Status.RESCHEDULED:
            successor = Booking.objects.filter(rescheduled_from=b).first()
            if successor is None:
                return "rescheduled: waiting for the new booking before moving the task"
            return f"moved to booking #{successor.pk}: synced there"
        self.link = link = link_for(b, create=True)
        if link.decision == KommoLink.Decision.SKIP:
            set_crm_status(b, Booking.CrmStatus.SKIPPED)
            return "skipped by staff"
        if link.lead_id is None:
            waiting = self._decide()
            if waiting:
                return waiting
        elif link.match_method == KommoLink.MatchMethod.MANUAL and not link.has_writes:
            waiting = self._check_assigned_deal()
            if waiting:
                return waiting
        set_crm_status(
            b,
            Booking.CrmStatus.INBOUND_LEAD
            if link.match_method == KommoLink.MatchMethod.INBOUND_LEAD
            else Booking.CrmStatus.MATCHED,
        )
        self._write()
        return "; ".join(self.done) or "up to date"

    # --- choosing the deal -------------------------------------------------------------------------

    def _decide(self) -> str | None:
        link = self.link
        if link.decision == KommoLink.Decision.INBOUND_LEAD:
            return self._create_inbound_lead()
        if link.review_state == KommoLink.ReviewState.OPEN:
            return self._needs_review(open_item=False)
        choice = self._match()
        link.candidates = choice.candidates
        link.match_reason = choice.reason
        link.contact_id = choice.contact_id
        if choice.outcome == REVIEW:
            return self._needs_review()
        if choice.outcome == INBOUND_LEAD:
            link.save()
            return self._create_inbound_lead()
        link.lead_id = choice.lead_id
        link.match_method = choice.method
        link.lead_responsible_user_id = choice.responsible_user_id
        link.extra_note_lead_ids = list(choice.extra_note_lead_ids)
        link.save()
        self.done.append(f"deal {choice.lead_id} ({choice.method})")
        return None

    def _needs_review(self, *, open_item: bool = True) -> str:
        """Hand the booking to a human: open its review item (the link, whose `match_reason` says why),
        mark the booking NEEDS_REVIEW, and return the outcome text. `open_item=False`: it is open already."""
        if open_item:
            self.link.review_state = KommoLink.ReviewState.OPEN
            self.link.save()
        set_crm_status(self.b, Booking.CrmStatus.NEEDS_REVIEW)
        return f"needs review: {self.link.match_reason}"

    def _check_assigned_deal(self) -> str | None:
        """A deal typed in by staff: make sure it exists before writing to it, and learn its owner."""
        link = self.link
        lead = self.client.get_lead(link.lead_id)
        if lead is None or lead.get("is_deleted"):
            link.match_reason = f"deal {link.lead_id} (assigned by staff) does not exist in Kommo"
            link.lead_id = None
            return self._needs_review()
        link.lead_responsible_user_id = lead.get("responsible_user_id")
        link.save(update_fields=["lead_responsible_user_id", "updated_at"])
        return None

    def _match(self):
        b, cfg, client = self.b, self.cfg, self.client
        found = self.prepared if self.prepared is not None and self.prepared.email == b.invitee_email else None
        found = found or lookup(b, cfg, client)
        explicit, contacts, fetched = found.explicit, found.contacts, found.fetched
        ids = {e.lead_id for e in explicit if e.lead_id is not None}
        lead_ids = {i for c in contacts for i in contact_lead_ids(c)}
        explicit_leads = {int(lead["id"]): lead for lead in fetched if int(lead["id"]) in ids}
        leads = [lead for lead in fetched if int(lead["id"]) in lead_ids]
        remembered_lead = None
        remembered_key = None
        if not any(e.lead_id in explicit_leads for e in explicit):
            if contacts:
                key = RememberedDeal.key_for(lead["id"] for lead in open_leads(leads, cfg.policy.pipeline_ids))
                rule = RememberedDeal.objects.filter(
                    email=b.invitee_email.strip().lower(), candidate_key=key, active=True
                ).first()
                if rule is not None:
                    remembered_lead = next((x for x in leads if int(x["id"]) == rule.lead_id), None)
                    remembered_lead = remembered_lead or client.get_lead(rule.lead_id)
                    remembered_key = key
        return choose_deal(
            explicit=explicit,
            explicit_leads=explicit_leads,
            contacts=contacts,
            leads=leads,
            policy=cfg.policy,
            remembered_lead=remembered_lead,
            remembered_key=remembered_key,
            email=b.invitee_email,
        )

    def _create_inbound_lead(self) -> str | None:
        b, link, cfg = self.b, self.link, self.cfg
        key = "inbound_lead"
        if key in link.pending_writes:
            # Kommo offers no reliable way to find our incoming lead again: a human decides.
            link.match_reason = (
                "creating the incoming lead may have succeeded but its answer was lost: check Kommo's "
                "Incoming leads, then assign the deal (or create the incoming lead again)"
            )
            return self._needs_review()
        self._mark_pending(key)
        try:
            result = self.client.create_inbound_lead(
                source_uid=cfg.source_uid,
                source_name=cfg.source_name,
                lead_name=f"{b.invitee_name} — {b.event_type_name or 'Calendly'}",
                contact_name=b.invitee_name,
                email=b.invitee_email,
                phone=b.invitee_phone,
                pipeline_id=cfg.inbound_pipeline_id,
                form_name=b.event_type_name or "Calendly booking",
                sent_at=int(b.created_at.timestamp()) if b.created_at else None,
            )
        except KommoUncertainWrite:
            raise
        except Exception:
            self._clear_pending(key)
            raise
        link.pending_writes.pop(key, None)
        link.lead_id = result["lead_id"]
        link.contact_id = result["contact_id"]
        link.inbound_uid = result["uid"]
        link.match_method = KommoLink.MatchMethod.INBOUND_LEAD
        if link.review_state == KommoLink.ReviewState.OPEN or link.decision:
            link.review_state = KommoLink.ReviewState.RESOLVED
        link.save()
        self.done.append(f"incoming lead {link.lead_id} created")
        return None
