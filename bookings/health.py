"""A booking's sync health: one answer to "is this meeting where it should be in Kommo and Zoom?".

Computed in the database (an annotation), so the booking list can show and filter it, and the admin
index can count what needs a person. It reads only what bookings keeps: the newest event that concerns
the booking (its status and retry time), `crm_status` (the CRM app sets it to "needs review") and the
conference fields (the conferencing app fills `conference_join_url`). Order of the checks: what needs
a person first.
"""

from __future__ import annotations

import re

from django.db import models
from django.db.models import Case, CharField, OuterRef, Q, QuerySet, Subquery, Value, When

from bookings.calendly import CALENDLY_CONFERENCE_TYPES, CONFERENCE_FAILED
from bookings.models import Booking, WebhookEvent


class SyncHealth(models.TextChoices):
    NEEDS_ATTENTION = "needs_attention", "Needs attention"
    RETRYING = "retrying", "Retrying"
    REVIEW = "review", "Waiting for review"
    CALENDLY_LINK = "calendly_link", "Waiting for Calendly’s link"
    SYNCING = "syncing", "Being synced"
    IN_SYNC = "in_sync", "In sync"


HEALTH_COLOURS = {
    SyncHealth.NEEDS_ATTENTION: "#c62828",
    SyncHealth.RETRYING: "#ef6c00",
    SyncHealth.REVIEW: "#ef6c00",
    SyncHealth.CALENDLY_LINK: "#1565c0",
    SyncHealth.SYNCING: "#1565c0",
    SyncHealth.IN_SYNC: "#2e7d32",
}

HEALTH_EXPLAINED = {
    SyncHealth.NEEDS_ATTENTION: "The last sync failed and calsync will not try again on its own: "
    "read why below, fix it, then press “Sync again”.",
    SyncHealth.RETRYING: "The last sync failed; calsync tries again on its own.",
    SyncHealth.REVIEW: "calsync needs you to choose its Kommo deal in the review queue.",
    SyncHealth.CALENDLY_LINK: "Calendly is still making the meeting’s conference link; calsync adds it when it comes.",
    SyncHealth.SYNCING: "calsync is syncing it right now.",
    SyncHealth.IN_SYNC: "Kommo and Zoom are up to date with this booking.",
}


def _newest_event(field: str) -> Subquery:
    events = (
        WebhookEvent.objects.filter(Q(booking=OuterRef("pk")) | Q(invitee_uri=OuterRef("invitee_uri")))
        .exclude(status=WebhookEvent.Status.IGNORED)
        .order_by("-received_at", "-pk")
    )
    return Subquery(events.values(field)[:1])


def with_sync_health(queryset: QuerySet[Booking]) -> QuerySet[Booking]:
    """The bookings with `sync_health` (a SyncHealth value) and `last_error` of their newest event."""
    failed = Q(newest_event_status=WebhookEvent.Status.FAILED)
    return queryset.annotate(
        newest_event_status=_newest_event("status"),
        newest_event_retry_at=_newest_event("next_attempt_at"),
        newest_event_error=_newest_event("last_error"),
    ).annotate(
        sync_health=Case(
            When(failed & Q(newest_event_retry_at__isnull=True), then=Value(SyncHealth.NEEDS_ATTENTION.value)),
            When(failed, then=Value(SyncHealth.RETRYING.value)),
            When(crm_status=Booking.CrmStatus.NEEDS_REVIEW, then=Value(SyncHealth.REVIEW.value)),
            When(
                Q(status=Booking.Status.SCHEDULED, location_type__in=CALENDLY_CONFERENCE_TYPES, conference_join_url="")
                & ~Q(location_status=CONFERENCE_FAILED),
                then=Value(SyncHealth.CALENDLY_LINK.value),
            ),
            When(
                newest_event_status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING],
                then=Value(SyncHealth.SYNCING.value),
            ),
            default=Value(SyncHealth.IN_SYNC.value),
            output_field=CharField(),
        ),
    )


def health_of(booking: Booking) -> SyncHealth:
    """The sync health of one booking (annotated already, or looked up)."""
    value = getattr(booking, "sync_health", None)
    if value is None:
        value = with_sync_health(Booking.objects.filter(pk=booking.pk)).values_list("sync_health", flat=True)[0]
    return SyncHealth(value)


def bookings_needing_a_person() -> QuerySet[Booking]:
    return with_sync_health(Booking.objects.all()).filter(sync_health=SyncHealth.NEEDS_ATTENTION)


# --- errors in words --------------------------------------------------------------------------------

SERVICES = {"crm": "Kommo", "conferencing": "Zoom", "bookings": "Calendly"}

# Exception class name → what happened, in words. The class names are the apps' own, as strings.
PLAIN_ERRORS = {
    "KommoPaymentRequired": "Kommo says the account is unpaid",
    "KommoReconnectNeeded": "Kommo needs to be connected again (Kommo connection page)",
    "KommoAuthError": "Kommo refused calsync’s token",
    "KommoForbidden": "Kommo does not let calsync’s user do this",
    "KommoIPBlocked": "Kommo blocks this server’s address",
    "KommoNotFound": "Kommo no longer has something calsync wrote (a deal, note or task)",
    "KommoValidationError": "Kommo refused what calsync sent",
    "KommoRateLimited": "Kommo asked calsync to slow down",
    "KommoServerError": "Kommo was down or answered with an error",
    "KommoUncertainWrite": "Kommo did not answer in time, so calsync does not know whether the write happened",
    "ZoomAuthError": "Zoom refused calsync’s credentials",
    "ZoomRequestRejected": "Zoom refused the meeting calsync asked for",
    "ZoomNotFound": "Zoom no longer has the meeting or its host",
    "ZoomDailyLimitReached": "the Zoom account reached its daily limit",
    "ZoomRateLimited": "Zoom asked calsync to slow down",
    "ZoomCreateOutcomeUnknown": "Zoom did not answer in time, so calsync does not know whether the meeting exists",
    "ZoomUnavailable": "Zoom was down or did not answer",
    "IntegrityError": "the database refused to save a duplicate (a meeting or note id calsync already has)",
    "OperationalError": "the database was not reachable",
    "BookingBusy": "another worker was syncing this booking at the same moment",
    "PayloadError": "Calendly’s delivery could not be read",
    "ConnectionError": "the service could not be reached",
    "Timeout": "the service did not answer in time",
    "ReadTimeout": "the service did not answer in time",
}

_PART = re.compile(r"(?:(?P<step>[a-z_]+): )?(?P<kind>[A-Za-z_][A-Za-z0-9_]*): ")


def _one(step: str | None, kind: str | None, rest: str) -> str:
    service = SERVICES.get(step or "", "")
    words = PLAIN_ERRORS.get(kind or "")
    if words is None and kind in ("SyncError", "PermanentSyncError", "KommoError", "ZoomError", "ValueError"):
        words = rest.strip()  # these carry a message written for people
    if words is None:
        words = f"{service or 'a step'} failed unexpectedly (the technical detail says where)"
    elif service and not words.lower().startswith(service.lower()) and step:
        words = f"{service}: {words}"
    return words


def plain_error(text: str) -> str:
    """A stored error ("_StepsFailed: crm: KommoPaymentRequired: …") as a sentence, without class names."""
    text = (text or "").strip()
    if not text:
        return ""
    if text.startswith("_StepsFailed: "):
        text = text[len("_StepsFailed: ") :]
    sentences = []
    for part in re.split(r"; (?=[a-z_]+: [A-Za-z_]+: )", text):
        match = _PART.match(part)
        if match is None:
            sentences.append(part.strip())
            continue
        sentences.append(_one(match["step"], match["kind"], part[match.end() :]))
    joined = "; ".join(dict.fromkeys(sentences))
    return joined[:1].upper() + joined[1:] + ("" if joined.endswith(".") else ".")
