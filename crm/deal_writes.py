"""What a booking's Kommo deal should show, and writing each of it exactly once: `DealWriter`.

Per meeting chain (a booking and its reschedules):
- one "booked" note (for the booking first synced) and one meeting task;
- for each later reschedule: a "moved" note, and the same task moved (PATCH complete_till and text);
- a follow-up note when the join link appears after the first note (a Zoom outage delayed it);
- when cancelled: a note with who and why, and the task completed with a result text;
- no-show marked / undone: a note each, every time (crm.no_show).
Every id is recorded the moment Kommo returns it (its own save). A write whose answer was lost stays in
`pending_writes`; the next run looks for its marker in the deal before writing again.
`crm.sync.BookingSync` builds on it: it chooses the deal first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from django.utils import timezone

from bookings.models import Booking
from crm import notes
from crm.booking_crm import CrmSettings
from crm.kommo import KommoClient, KommoUncertainWrite
from crm.models import KommoLink, marker_token
from crm.no_show import pending_no_show_note


class QueuedWrites(Protocol):
    """Where a booking's first note and task wait to be sent with other bookings' (crm.batching.WriteBatch)."""

    def add(self, kind: str, sync: Any, key: str, item: Any, record: Callable[[int, str | None], None]) -> None: ...


TASK_ARGS = ("text", "complete_till", "duration", "task_type_id", "responsible_user_id")
LINK_STATE_FIELDS = ["pending_writes", "note_ids", "task_id", "task_state", "join_url_noted", "updated_at"]


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]


class DealWriter:
    """The notes and task of one booking's deal (`link`, set once the deal is chosen), each written once."""

    link: KommoLink

    def __init__(
        self,
        booking: Booking,
        client: KommoClient,
        cfg: CrmSettings | None = None,
        batch: QueuedWrites | None = None,
    ):
        self.b = booking
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
