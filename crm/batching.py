"""Several bookings' Kommo work in few requests: Kommo's v4 API takes arrays.

When several bookings wait (a burst), processing hands them to `reconcile_batch` together. Per booking,
one request cannot be shared: the contact search by e-mail (`GET /api/v4/contacts?query=` takes one
term). The rest is shared by the whole batch: every deal in one `GET /api/v4/leads?filter[id][]=…`,
every first note in one `POST /api/v4/leads/notes` (each item names its deal in `entity_id`), every task
in one `POST /api/v4/tasks`. See https://developers.kommo.com/reference (≤ 250 items per request, 50
recommended for writes).

Idempotency is that of one write (crm.deal_writes): each note and task carries its `[calsync:<token>/<kind>]`
marker and is recorded as pending before the batch is sent. If the answer is lost (timeout, 5xx, no
id for an item), the items stay pending and their bookings' events fail; the retry looks for each
marker in its deal and adopts what landed instead of writing it again. If Kommo refused the batch
(a 4xx), nothing was written: the items are no longer pending and the retry writes them (one by one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bookings.models import Booking
from crm.booking_crm import CrmSettings, link_for
from crm.kommo import KommoClient, KommoUncertainWrite, contact_lead_ids
from crm.sync import BookingSync, Lookup, default_client, explicit_deal_ids, is_configured

logger = logging.getLogger(__name__)

WRITE_BATCH = 50  # Kommo recommends at most 50 items per add request


@dataclass
class Queued:
    sync: BookingSync
    key: str
    item: Any
    record: Callable[[int, str | None], None]


class WriteBatch:
    """Notes and tasks handed over by several BookingSyncs, sent in one request per kind (per 50)."""

    def __init__(self, client: KommoClient):
        self.client = client
        self.queued: dict[str, list[Queued]] = {"notes": [], "tasks": []}

    def add(self, kind: str, sync: BookingSync, key: str, item: Any, record: Callable[[int, str | None], None]):
        self.queued[kind].append(Queued(sync, key, item, record))

    def flush(self) -> dict[int, BaseException]:
        """Send everything queued; the error per booking (pk) for the items that were not written for sure."""
        errors: dict[int, BaseException] = {}
        send = {"notes": self.client.add_notes, "tasks": self.client.create_tasks}
        for kind, queued in self.queued.items():
            for start in range(0, len(queued), WRITE_BATCH):
                chunk = queued[start : start + WRITE_BATCH]
                try:
                    ids = send[kind]([q.item for q in chunk])
                except KommoUncertainWrite as exc:
                    for q in chunk:  # stay pending: the retry looks for the markers first
                        errors[q.sync.b.pk] = exc
                    continue
                except Exception as exc:
                    for q in chunk:  # Kommo said no (or it was never sent): nothing was written
                        q.sync._clear_pending(q.key)
                        errors[q.sync.b.pk] = exc
                    continue
                for q, new_id in zip(chunk, ids, strict=True):
                    if new_id is None:
                        errors[q.sync.b.pk] = KommoUncertainWrite(
                            f"Kommo batch of {kind}: answer without this item's id — it may have been written"
                        )
                        continue
                    q.sync.written(kind, q.key, new_id, q.record)
                    if kind == "tasks":
                        q.sync.done.append(f"task {new_id}")
        for kind in self.queued:
            self.queued[kind] = []
        return errors


def batchable(booking: Booking) -> bool:
    """A new live booking whose deal is not chosen yet: its whole first sync fits the batch."""
    return booking.is_live and not booking.rescheduled_from_id and link_for(booking) is None


def lookup_batch(bookings: Sequence[Booking], *, client: KommoClient | None = None) -> dict[int, Any] | None:
    """Read ahead what choosing the deals needs, for the bookings that fit the batch: per booking (pk) a
    Lookup, or the exception its search raised. Only reads: processing runs it alongside the meetings."""
    if client is None:
        if not is_configured():
            return None
        client = default_client()
    cfg = CrmSettings.load()
    found: dict[int, Any] = {}
    for b in bookings:
        if not batchable(b):
            continue
        try:  # one contact search per e-mail: Kommo's query= takes one term
            found[b.pk] = (explicit_deal_ids(b, cfg), client.find_contacts_by_email(b.invitee_email), b)
        except Exception as exc:
            found[b.pk] = exc
    searched = {pk: f for pk, f in found.items() if not isinstance(f, BaseException)}
    wanted: dict[int, set[int]] = {
        pk: {i for c in contacts for i in contact_lead_ids(c)} | {e.lead_id for e in explicit if e.lead_id is not None}
        for pk, (explicit, contacts, _) in searched.items()
    }
    all_ids = set().union(*wanted.values()) if wanted else set()
    with_contacts = any(e.lead_id is not None for explicit, _, _ in searched.values() for e in explicit)
    try:  # every deal of every booking in one list (≤ 250 a request)
        leads = {int(x["id"]): x for x in client.get_leads(all_ids, with_contacts=with_contacts)} if all_ids else {}
    except Exception as exc:
        return {**found, **dict.fromkeys(searched, exc)}
    for pk, (explicit, contacts, b) in searched.items():
        fetched = [leads[i] for i in sorted(wanted[pk]) if i in leads]
        found[pk] = Lookup(b.invitee_email, explicit, contacts, fetched)
    return found


def reconcile_batch(
    bookings: Sequence[Booking], *, client: KommoClient | None = None, prepared: dict[int, Any] | None = None
) -> dict[int, Any]:
    """Sync several bookings; per booking (pk) what `reconcile` would return, or the exception it raised.

    `prepared`: what `lookup_batch` read ahead (processing ran it while the meetings were created)."""
    if client is None:
        if not is_configured():
            return {b.pk: "Kommo not configured" for b in bookings}
        client = default_client()
    cfg = CrmSettings.load()
    lookups = prepared if prepared is not None else lookup_batch(bookings, client=client) or {}
    results: dict[int, Any] = {}
    batch = WriteBatch(client)
    syncs: list[BookingSync] = []
    for b in bookings:
        found = lookups.get(b.pk)
        if isinstance(found, BaseException):
            results[b.pk] = found
        elif isinstance(found, Lookup) and batchable(b):
            sync = BookingSync(b, client, cfg, prepared=found, batch=batch)
            syncs.append(sync)
            results[b.pk] = _run(sync.run)
        else:  # anything but a new booking's first sync: one by one, as `reconcile` does
            results[b.pk] = _run(lambda b=b: BookingSync(b, client, cfg).run())
    errors = batch.flush()
    for sync in syncs:
        pk = sync.b.pk
        if not isinstance(results[pk], BaseException):
            results[pk] = errors.get(pk) or ("; ".join(sync.done) or "up to date")
    return results


reconcile_batch.prepare = lookup_batch  # type: ignore[attr-defined]


def _run(fn: Callable[[], str]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return exc
