"""Alerts for humans: anything records one with `raise_alert(key, kind, summary)`.

The same key is recorded once, so raising it again (every scheduled run while the problem lasts)
costs nothing and mails nothing. Collecting alerts from the database's state and mailing them as a
digest is the ops app's work (`ops.alerts`).
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from calsync.models import Alert

logger = logging.getLogger(__name__)

# Kinds, in the order the digest lists them.
SUBSCRIPTION_DISABLED = "subscription_disabled"
SUBSCRIPTION_MISSING = "subscription_missing"
SUBSCRIPTION_INCOMPLETE = "subscription_incomplete"
KOMMO_DISCONNECTED = "kommo_disconnected"
EVENT_FAILED = "event_failed"
REVIEW_NEAR_MEETING = "review_near_meeting"
ZOOM_MEETING_MISSING = "zoom_meeting_missing"
REVIEW_NEEDED = "review_needed"
ZOOM_HYGIENE = "zoom_hygiene"
DRIFT = "drift"
OTHER = "other"


def raise_alert(key: str, kind: str, summary: str) -> bool:
    """Record an alert for the next digest; True if it is new. Idempotent by `key`."""
    if Alert.objects.filter(key=key).exists():
        return False
    try:
        with transaction.atomic():
            Alert.objects.create(key=key[:300], kind=kind, summary=summary[:2000])
    except IntegrityError:  # raised by another process at the same moment
        return False
    logger.warning("alert raised (%s): %s", kind, summary)
    return True
