"""Alerts for humans, sent as one digest mail at most every CALSYNC_ALERT_INTERVAL, never one per event.

Anything records an alert with `calsync.alerts.raise_alert(key, kind, summary)`.
`collect_alerts()` turns the database's own state into alerts (failed events that need a human,
bookings waiting for review, review items whose meeting is near, bookings about to start without
their Zoom meeting). `send_alert_digest()` mails every
alert not yet reported, if the last digest is older than the interval, and marks them reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db.models import Max
from django.utils import timezone

from calsync.alerts import (
    DRIFT,
    EVENT_FAILED,
    KOMMO_DISCONNECTED,
    OTHER,
    REVIEW_NEAR_MEETING,
    REVIEW_NEEDED,
    SUBSCRIPTION_DISABLED,
    SUBSCRIPTION_INCOMPLETE,
    SUBSCRIPTION_MISSING,
    ZOOM_HYGIENE,
    ZOOM_MEETING_MISSING,
    raise_alert,
)
from calsync.models import Alert

logger = logging.getLogger(__name__)

DIGEST_LOCK = "calsync:alert-digest-lock"

# In the order the digest lists them.
KIND_TITLES = {
    SUBSCRIPTION_DISABLED: "Calendly webhook subscription disabled",
    SUBSCRIPTION_MISSING: "Calendly webhook subscription missing",
    SUBSCRIPTION_INCOMPLETE: "Calendly webhook subscription lacks a kind calsync handles",
    KOMMO_DISCONNECTED: "Kommo connection needs reconnecting",
    EVENT_FAILED: "Failed events that need attention",
    REVIEW_NEAR_MEETING: "Review items whose meeting is soon",
    ZOOM_MEETING_MISSING: "Meetings starting soon without their Zoom meeting",
    REVIEW_NEEDED: "Bookings waiting for a deal to be chosen",
    DRIFT: "Kommo tasks and Zoom meetings changed by hand (repaired, or for you to decide)",
    ZOOM_HYGIENE: "Leftover Zoom meetings removed (for information)",
    OTHER: "Other",
}


def _admin_link(path: str) -> str:
    base = settings.CALSYNC_PUBLIC_URL.rstrip("/")
    return f"{base}{path}" if base else path


def collect_alerts(now: datetime | None = None) -> int:
    """Raise an alert for every failed event and review item the database holds; return how many were new."""
    from bookings.models import Booking, WebhookEvent

    now = now or timezone.now()
    new = 0
    failed = WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED, next_attempt_at__isnull=True)
    for event in failed.only("pk", "kind", "attempts", "last_error").order_by("pk")[:500]:
        # The attempt count is in the key: failing again after a replay is news again.
        new += raise_alert(
            f"event-failed:{event.pk}:{event.attempts}",
            EVENT_FAILED,
            f"event #{event.pk} ({event.kind}) failed after {event.attempts} attempt(s): "
            f"{event.last_error[:200]} — {_admin_link(f'/admin/bookings/webhookevent/{event.pk}/change/')}",
        )
    review = Booking.objects.filter(crm_status=Booking.CrmStatus.NEEDS_REVIEW, status=Booking.Status.SCHEDULED)
    soon = now + timedelta(hours=settings.CALSYNC_REVIEW_ALERT_HOURS)
    for booking in review.only("pk", "start_at", "event_type_name", "invitee_name").order_by("start_at")[:500]:
        link = _admin_link(f"/admin/bookings/booking/{booking.pk}/change/")
        what = f"booking #{booking.pk} {booking.event_type_name or 'meeting'} at {booking.start_at:%Y-%m-%d %H:%M} UTC"
        new += raise_alert(f"review:{booking.pk}", REVIEW_NEEDED, f"{what} needs a deal chosen — {link}")
        if now <= booking.start_at <= soon:
            new += raise_alert(
                f"review-near:{booking.pk}",
                REVIEW_NEAR_MEETING,
                f"{what} starts within {settings.CALSYNC_REVIEW_ALERT_HOURS} h and still needs a deal — {link}",
            )
    new += _collect_missing_zoom_meetings(now)
    return new


def _collect_missing_zoom_meetings(now: datetime) -> int:
    from conferencing.watch import bookings_without_meeting

    hours = settings.CALSYNC_ZOOM_ALERT_HOURS
    new = 0
    for booking, why in bookings_without_meeting(now, timedelta(hours=hours)):
        link = _admin_link(f"/admin/bookings/booking/{booking.pk}/change/")
        new += raise_alert(
            f"zoom-missing:{booking.pk}",
            ZOOM_MEETING_MISSING,
            f"booking #{booking.pk} {booking.event_type_name or 'meeting'} at {booking.start_at:%Y-%m-%d %H:%M} UTC "
            f"starts within {hours:g} h and has no Zoom meeting: {why}. Create one by hand or change the host "
            f"— {link}",
        )
    return new


@dataclass(frozen=True)
class DigestResult:
    sent: bool
    alerts: int
    detail: str

    def __str__(self) -> str:
        return self.detail


def send_alert_digest(now: datetime | None = None) -> DigestResult:
    """Mail every unreported alert in one message, unless the last digest went out within the interval."""
    now = now or timezone.now()
    recipients = settings.CALSYNC_ALERT_EMAILS
    pending = list(Alert.objects.filter(reported_at__isnull=True).order_by("raised_at", "pk"))
    if not pending:
        return DigestResult(False, 0, "nothing to report")
    if not recipients:
        return DigestResult(False, len(pending), f"{len(pending)} alert(s) pending; CALSYNC_ALERT_EMAILS is empty")
    last = Alert.objects.aggregate(last=Max("reported_at"))["last"]
    interval = timedelta(seconds=settings.CALSYNC_ALERT_INTERVAL)
    if last is not None and now - last < interval:
        return DigestResult(False, len(pending), f"{len(pending)} alert(s) wait until {(last + interval):%H:%M} UTC")
    # Two workers running the schedule at once must not both mail.
    if not cache.add(DIGEST_LOCK, "1", timeout=300):
        return DigestResult(False, len(pending), "another digest is being sent")
    try:
        subject, body = _compose(pending)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
        Alert.objects.filter(pk__in=[a.pk for a in pending], reported_at__isnull=True).update(reported_at=now)
    except Exception as exc:  # mail server down: keep them pending, the next run tries again
        logger.error("alert digest could not be sent: %s", type(exc).__name__)
        return DigestResult(False, len(pending), f"sending failed: {type(exc).__name__}")
    finally:
        cache.delete(DIGEST_LOCK)
    logger.info("alert digest sent: %d alert(s) to %d recipient(s)", len(pending), len(recipients))
    return DigestResult(True, len(pending), f"sent {len(pending)} alert(s)")


def _compose(alerts: list[Alert]) -> tuple[str, str]:
    by_kind: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_kind.setdefault(alert.kind if alert.kind in KIND_TITLES else OTHER, []).append(alert)
    urgent = by_kind.keys() & {
        SUBSCRIPTION_DISABLED,
        SUBSCRIPTION_MISSING,
        SUBSCRIPTION_INCOMPLETE,
        KOMMO_DISCONNECTED,
        REVIEW_NEAR_MEETING,
        ZOOM_MEETING_MISSING,
    }
    subject = f"{settings.EMAIL_SUBJECT_PREFIX}calsync: {len(alerts)} alert(s)" + (" — action needed" if urgent else "")
    lines = ["calsync found the following since its last report.", ""]
    for kind, title in KIND_TITLES.items():
        if kind in by_kind:
            lines.append(f"{title} ({len(by_kind[kind])}):")
            lines.extend(f"  - {a.summary}" for a in by_kind[kind])
            lines.append("")
    lines.append("Operating guide: docs/operations.md (Alerts).")
    return subject, "\n".join(lines)
