"""`reconcile(booking)`: bring the booking's Kommo deal in line with the booking, writing only what is missing.

What the deal should show, per meeting chain (a booking and its reschedules):
- one "booked" note (for the booking first synced) and one meeting task;
- for each later reschedule: a "moved" note, and the same task moved (PATCH complete_till and text);
- a follow-up note when the join link appears after the first note (a Zoom outage delayed it);
- when cancelled: a note with who and why, and the task completed with a result text;
- no-show marked / undone: a note each, every time (crm.no_show).
Every id is recorded the moment Kommo returns it (its own save). A write whose answer was lost stays in
`pending_writes`; the next run looks for its marker in the deal before writing again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

from bookings.models import Booking
from crm import notes
from crm.booking_crm import CrmSettings, link_for, set_crm_status
from crm.client import kommo_client
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
from crm.models import KommoLink, RememberedDeal, marker_token
from crm.no_show import pending_no_show_note


class QueuedWrites(Protocol):
    """Where a booking's first note and task wait to be sent with other bookings' (crm.batching.WriteBatch)."""

    def add(self, kind: str, sync: Any, key: str, item: Any, record: Callable[[int, str | None], None]) -> None: ...


logger = logging.getLogger(__name__)

TASK_ARGS = ("text", "complete_till", "duration", "task_type_id", "responsible_user_id")
LINK_STATE_FIELDS = ["pending_writes", "note_ids", "task_id", "task_state", "join_url_noted", "updated_at"]


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


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]


class BookingSync:
    def __init__(
        self,
        booking: Booking,
        client: KommoClient,
        cfg: CrmSettings | None = None,
        prepared: Lookup | None = None,
        batch: QueuedWrites | None = None,
    ):
        self.b = booking
        self.prepared = prepared
        # With a batch, the booking's first note and its task are recorded as pending and handed to the
        # batch, which sends them with other bookings' in one request each (crm.batching).
        self.batch = batch
        self._deferred_join = ""
        self.client = client
        self.cfg = cfg or CrmSettings.load()
        self.token = marker_token(booking.invitee_uri)
        self.done: list[str] = []
        self._listed: dict[tuple[str, int], list[dict]] = {}
        self._host_user: int | bool | None = False  # False = not looked up yet

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

    # --- writing -----------------------------------------------------------------------------------

    def _write(self) -> None:
        b, link = self.b, self.link
        join_url = b.conference_join_url if b.is_live else ""
        self._settle_earlier_lost_notes()
        for lead_id in link.note_lead_ids:
            booked = [k for k in link.note_ids if k.startswith("booked:") and k.endswith(f"@{lead_id}")]
            if not booked:
                self._note(lead_id, "booked", "note_booked", join_url=join_url)
            elif b.rescheduled_from_id and f"booked:{self.token}@{lead_id}" not in booked:
                self._note(lead_id, "rescheduled", "note_rescheduled", join_url=join_url)
        restored = link.task_state.get("restored_from")
        if restored and link.task_id is None and b.is_live:  # a person deleted the task in Kommo
            self._note(link.lead_id, f"task_restored-{restored}", "note_task_restored")
        self._task()
        if join_url and link.join_url_noted != join_url and self._deferred_join != join_url:
            kind = f"joinlink-{_hash(join_url)}"
            for lead_id in link.note_lead_ids:
                self._note(lead_id, kind, "note_join_link", join_url=join_url)
            link.join_url_noted = join_url
            link.save(update_fields=["join_url_noted", "updated_at"])
        if b.status == Booking.Status.CANCELED:
            for lead_id in link.note_lead_ids:
                self._note(lead_id, "canceled", "note_canceled")
            self._complete_task()
        for lead_id in link.note_lead_ids:
            no_show_note = pending_no_show_note(b, link.note_ids, self.token, lead_id)
            if no_show_note:
                self._note(lead_id, *no_show_note)

    def _note(self, lead_id: int, kind: str, template: str, *, join_url: str = "") -> None:
        key = f"{kind}:{self.token}@{lead_id}"
        if key in self.link.note_ids:
            return
        marker = f"[calsync:{self.token}/{kind}]"
        context = notes.meeting_context(self.b, join_url=join_url, host=self._host_label())
        text = notes.render(template, context, marker=marker)

        def record(note_id: int, adopted_text: str | None) -> None:
            self.link.note_ids[key] = note_id
            # An adopted note was written by an earlier attempt, maybe before the link existed.
            if join_url and (adopted_text is None or join_url in adopted_text):
                self.link.join_url_noted = join_url

        queued = (lead_id, text) if kind == "booked" else None
        if self._once(key, marker, lead_id, "notes", lambda: self.client.add_note(lead_id, text), record, queued):
            self._deferred_join = join_url

    def _task_fields(self) -> tuple[dict, str]:
        b = self.b
        text = notes.render(
            "task_text", notes.meeting_context(b, host=self._host_label()), marker=f"[calsync:{self.link.marker}/task]"
        )
        desired = {
            "invitee_uri": b.invitee_uri,
            "complete_till": int(b.start_at.timestamp()),
            "duration": int((b.end_at - b.start_at).total_seconds()),
            "text_hash": _hash(text),
        }
        return desired, text

    def _task(self) -> None:
        link = self.link
        desired, text = self._task_fields()
        if link.task_id is None:
            responsible = self._responsible_user_id()

            def record(task_id: int, adopted_text: str | None) -> None:
                link.task_id = task_id
                # A task adopted after a lost answer holds whatever times that earlier attempt sent
                # (before a reschedule, maybe): leave them unknown so the check below sets them.
                link.task_state = {**desired, "completed": False} if adopted_text is None else {"completed": False}

            fields = KommoClient.task_fields(
                link.lead_id,
                text=text,
                complete_till=desired["complete_till"],
                duration=desired["duration"],
                task_type_id=self.cfg.task_type_id,
                responsible_user_id=responsible,
            )
            deferred = self._once(
                "task",
                f"[calsync:{link.marker}/task]",
                link.lead_id,
                "tasks",
                lambda: self.client.create_task(link.lead_id, **{k: v for k, v in fields.items() if k in TASK_ARGS}),
                record,
                fields,
            )
            if deferred:
                return
            self.done.append(f"task {link.task_id}")
            if "complete_till" in link.task_state:
                return
        shown = {k: link.task_state.get(k) for k in desired}
        # A cancelled meeting's task is about to be completed: no point moving it first.
        if shown != desired and not link.task_state.get("completed") and self.b.is_live:
            self.client.update_task(
                link.task_id, complete_till=desired["complete_till"], duration=desired["duration"], text=text
            )
            link.task_state = {**link.task_state, **desired}
            link.save(update_fields=["task_state", "updated_at"])
            self.done.append(f"task {link.task_id} updated")

    def _complete_task(self) -> None:
        link = self.link
        if link.task_id is None or link.task_state.get("completed"):
            return
        result = notes.render("task_result_canceled", notes.meeting_context(self.b))
        self.client.complete_task(link.task_id, result)
        link.task_state = {**link.task_state, "completed": True}
        link.save(update_fields=["task_state", "updated_at"])
        self.done.append(f"task {link.task_id} completed")

    # --- the write-once protocol -------------------------------------------------------------------

    def _mark_pending(self, key: str) -> None:
        self.link.pending_writes[key] = timezone.now().isoformat()
        self.link.save(update_fields=["pending_writes", "updated_at"])

    def _clear_pending(self, key: str) -> None:
        if self.link.pending_writes.pop(key, None) is not None:
            self.link.save(update_fields=["pending_writes", "updated_at"])

    def _once(
        self,
        key: str,
        marker: str,
        lead_id: int,
        kind: str,
        create: Callable[[], int],
        record: Callable[[int, str | None], None],
        queued: object = None,
    ) -> bool:
        """Create one note or task exactly once, adopting a copy a lost answer left behind.

        True if it was handed to the batch (`queued`: what the batch sends): recorded as pending like any
        write before it is sent, so a batch whose answer is lost is settled by the markers as one write is."""
        link = self.link
        if key in link.pending_writes:
            found = self._find_marker(kind, lead_id, marker)
            if found is not None:
                link.pending_writes.pop(key)
                record(*found)
                link.save(update_fields=LINK_STATE_FIELDS)
                self.done.append(f"adopted {kind[:-1]} {found[0]}")
                return False
        self._mark_pending(key)
        if self.batch is not None and queued is not None:
            self.batch.add(kind, self, key, queued, record)
            return True
        try:
            new_id = create()
        except KommoUncertainWrite:
            raise  # stays pending: the next run looks for the marker first
        except Exception:
            self._clear_pending(key)  # Kommo said no (or we never sent it): nothing was written
            raise
        self.written(kind, key, new_id, record)
        return False

    def written(self, kind: str, key: str, new_id: int, record: Callable[[int, str | None], None]) -> None:
        """Kommo answered with the new item's id: record it (pending no more)."""
        self.link.pending_writes.pop(key, None)
        record(new_id, None)
        self.link.save(update_fields=LINK_STATE_FIELDS)
        if kind == "notes":
            self.done.append(f"note {new_id}")

    def _find_marker(self, kind: str, lead_id: int, marker: str) -> tuple[int, str] | None:
        """The id and text of the note or task carrying `marker` in the deal, if Kommo has it."""
        if (kind, lead_id) not in self._listed:
            items = self.client.list_notes(lead_id) if kind == "notes" else self.client.list_tasks(lead_id)
            self._listed[(kind, lead_id)] = items
        for item in self._listed[(kind, lead_id)]:
            text = (item.get("params") or {}).get("text") if kind == "notes" else item.get("text")
            if isinstance(text, str) and marker in text:
                return int(item["id"]), text
        return None

    def _settle_earlier_lost_notes(self) -> None:
        """Notes an earlier booking of the chain sent without hearing back (it was rescheduled since and
        never syncs again): adopt those that landed, forget those that did not, before deciding what
        this booking still has to write. Otherwise a lost "booked" note gets a second "booked" note."""
        link = self.link
        foreign = [k for k in link.pending_writes if ":" in k and "@" in k and f":{self.token}@" not in k]
        for key in foreign:
            kind, _, rest = key.partition(":")
            token, _, lead = rest.partition("@")
            found = self._find_marker("notes", int(lead), f"[calsync:{token}/{kind}]")
            link.pending_writes.pop(key)
            if found is not None:
                link.note_ids[key] = found[0]
                self.done.append(f"adopted note {found[0]}")
            link.save(update_fields=LINK_STATE_FIELDS)

    # --- people ------------------------------------------------------------------------------------

    def _host_label(self) -> str:
        b = self.b
        if b.host_name and b.host_email:
            return f"{b.host_name} <{b.host_email}>"
        return b.host_name or b.host_email

    def _responsible_user_id(self) -> int | None:
        """The Calendly host's Kommo user (by email, users cached), else the deal's responsible user."""
        if self._host_user is False:
            self._host_user = self.client.user_id_for_email(self.b.host_email) if self.b.host_email else None
        return self._host_user or self.link.lead_responsible_user_id
