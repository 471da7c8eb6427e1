"""Admin for the Kommo side: links, remembered deals; the review queue is in crm/review_admin.py."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from bookings.models import Booking
from calsync.admin_mixins import ReadOnlyAdminMixin
from crm.deal_names import deal_url
from crm.models import KommoLink, RememberedDeal


def deal_link(lead_id: int | None) -> str:
    if not lead_id:
        return "—"
    url = deal_url(lead_id)
    return format_html('<a href="{}" target="_blank" rel="noopener">deal {}</a>', url, lead_id) if url else str(lead_id)


def booking_deal(booking: Booking) -> str:
    """The booking admin's "Kommo deal" column (registered in CrmConfig.ready)."""
    link = getattr(booking, "kommo_link", None)
    if link is None:
        for earlier in reversed(booking.chain()):  # the link follows the chain to the newest booking
            link = getattr(earlier, "kommo_link", None)
            if link is not None:
                break
    return deal_link(link.lead_id) if link else "—"


@admin.register(KommoLink)
class KommoLinkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("booking", "deal", "match_method", "review_state", "task_id", "updated_at")
    list_filter = ("match_method", "review_state")
    search_fields = ("booking__invitee_email", "booking__invitee_name", "lead_id")
    list_select_related = ("booking",)
    exclude = ("pending_writes",)

    @admin.display(description="deal", ordering="lead_id")
    def deal(self, obj: KommoLink) -> str:
        return deal_link(obj.lead_id)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude]


@admin.register(RememberedDeal)
class RememberedDealAdmin(admin.ModelAdmin):
    """Manual assignments calsync repeats for later bookings; switch one off to undo it."""

    list_display = ("email", "deal", "candidate_key", "active", "created_by", "created_at")
    list_filter = ("active",)
    list_editable = ("active",)
    search_fields = ("email",)
    fields = ("email", "lead_id", "candidate_key", "active", "created_by", "created_at")
    readonly_fields = ("email", "lead_id", "candidate_key", "created_by", "created_at")

    @admin.display(description="deal", ordering="lead_id")
    def deal(self, obj: RememberedDeal) -> str:
        return deal_link(obj.lead_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


from crm import oauth_admin, review_admin  # noqa: E402, F401  (the Kommo connection page, the review queue)
