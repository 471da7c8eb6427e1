"""The de-duplication keys of Calendly deliveries: which deliveries count as the same one.

Intake stores each body under its key (`stored_key`) and the backfill looks a rebuilt delivery up by
its key (`delivery_key`) first; both build keys here, so they always agree.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from bookings.calendly import INVITEE_NO_SHOW_CREATED, INVITEE_NO_SHOW_DELETED, CalendlyDelivery

NO_SHOW_KINDS = frozenset({INVITEE_NO_SHOW_CREATED, INVITEE_NO_SHOW_DELETED})


def delivery_key(kind: str, uri: str, *, no_show_uri: str | None = None, created_at: datetime | None = None) -> str:
    """The de-duplication key of a delivery; every place that stores or looks one up builds it here.

    (kind, invitee URI): each invitee is created once and cancelled once. A no-show can be marked,
    undone and marked again, each mark with its own `no_show.uri`, so the no-show kinds add it (or,
    without one, the delivery's own `created_at`, which a redelivery repeats). Keys of the invitee
    kinds are the same as they always were, so rows stored before stay valid.
    Never the event URI: a group event sends one delivery per invitee under the same event.
    """
    if kind in NO_SHOW_KINDS:
        mark = no_show_uri or (created_at.isoformat() if created_at else None)
        if mark:
            return f"{kind}|{uri}|{mark}"
    return f"{kind}|{uri}"


def dedupe_key(delivery: CalendlyDelivery) -> str | None:
    if not delivery.payload_uri:
        return None
    no_show_uri = delivery.invitee.no_show_uri if delivery.invitee else None
    return delivery_key(delivery.kind, delivery.payload_uri, no_show_uri=no_show_uri, created_at=delivery.created_at)


def stored_key(delivery: CalendlyDelivery | None, raw: bytes) -> str:
    """The key intake stores a body under: its `dedupe_key`, else a hash of the exact bytes.

    A body without a payload URI is keyed `body|<sha256>`; one that is no usable delivery at all
    (`delivery` is None) `invalid|<sha256>`, so a redelivery of either is still recognised.
    """
    if delivery is None:
        return "invalid|" + hashlib.sha256(raw).hexdigest()
    return dedupe_key(delivery) or "body|" + hashlib.sha256(raw).hexdigest()
