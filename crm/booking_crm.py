"""A booking's CRM side: its KommoLink (one per meeting chain), its CRM status, and the sync settings."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from bookings.models import Booking
from calsync.errors import PermanentSyncError
from crm.matching import MatchPolicy
from crm.models import KommoLink, marker_token


def link_for(booking: Booking, *, create: bool = False) -> KommoLink | None:
    """The chain's link; it follows the newest booking of the chain (the one reconciled now)."""
    chain = booking.chain()
    link = KommoLink.objects.filter(booking__in=chain).order_by("pk").first()
    if link is None:
        if not create:
            return None
        link, _ = KommoLink.objects.get_or_create(
            booking=booking, defaults={"marker": marker_token(booking.invitee_uri)}
        )
        return link
    if link.booking_id != booking.pk and booking.status != Booking.Status.RESCHEDULED:
        if not KommoLink.objects.filter(booking=booking).exists():
            link.booking = booking
            link.save(update_fields=["booking", "updated_at"])
    return link


@dataclass(frozen=True)
class CrmSettings:
    deal_id_question: str
    utm_field: str
    utm_prefix: str
    policy: MatchPolicy
    task_type_id: int
    inbound_pipeline_id: int | None
    source_uid: str
    source_name: str

    @classmethod
    def load(cls) -> CrmSettings:
        try:
            policy = MatchPolicy(
                several=settings.KOMMO_SEVERAL_DEALS_POLICY,
                none=settings.KOMMO_NO_DEAL_POLICY,
                pipeline_ids=frozenset(settings.KOMMO_PIPELINE_IDS),
            )
        except ValueError as exc:  # a setting is wrong: retrying cannot help until someone fixes it
            raise PermanentSyncError(str(exc)) from None
        return cls(
            deal_id_question=settings.KOMMO_DEAL_ID_QUESTION,
            utm_field=settings.KOMMO_DEAL_ID_UTM_FIELD,
            utm_prefix=settings.KOMMO_DEAL_ID_UTM_PREFIX,
            policy=policy,
            task_type_id=settings.KOMMO_TASK_TYPE_ID,
            inbound_pipeline_id=settings.KOMMO_INBOUND_PIPELINE_ID,
            source_uid=settings.KOMMO_INBOUND_SOURCE_UID,
            source_name=settings.KOMMO_INBOUND_SOURCE_NAME,
        )


def set_crm_status(booking: Booking, status: str) -> None:
    if booking.crm_status != status:
        Booking.objects.filter(pk=booking.pk).update(crm_status=status)
        booking.crm_status = status
