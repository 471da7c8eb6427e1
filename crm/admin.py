"""Admin for the Kommo side: the review queue (staff choose a meeting's deal), links, remembered deals."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from bookings.models import Booking
from bookings.verification import resync
from calsync.admin_mixins import ReadOnlyAdminMixin
from calsync.errors import SyncError
from crm import review
from crm.deal_names import check_deal, deal_url, describe_deals
from crm.forms import INBOUND_LEAD, OTHER, SKIP, ReviewDecisionForm
from crm.models import KommoLink, RememberedDeal, ReviewItem


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


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ("meeting", "invitee", "why", "candidate_count", "waiting_since")
    list_select_related = ("booking",)
    search_fields = ("booking__invitee_email", "booking__invitee_name")
    ordering = ("booking__start_at",)

    @admin.display(description="meeting", ordering="booking__start_at")
    def meeting(self, obj: ReviewItem) -> str:
        start = timezone.localtime(obj.booking.start_at).strftime("%a %d %b %Y, %H:%M %Z")
        return f"{obj.booking.event_type_name or 'Meeting'} — {start}"

    @admin.display(description="invitee")
    def invitee(self, obj: ReviewItem) -> str:
        return f"{obj.booking.invitee_name} <{obj.booking.invitee_email}>"

    @admin.display(description="why it needs you")
    def why(self, obj: ReviewItem) -> str:
        return obj.match_reason or "—"

    @admin.display(description="candidate deals")
    def candidate_count(self, obj: ReviewItem) -> int:
        return len(obj.candidates or [])

    @admin.display(description="waiting since", ordering="updated_at")
    def waiting_since(self, obj: ReviewItem) -> str:
        return timezone.localtime(obj.updated_at).strftime("%d %b %H:%M")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("crm.resolve_reviewitem")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None) -> HttpResponse:
        """The review screen: the booking, why it is here, the candidate deals, and the decision."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        item = get_object_or_404(KommoLink.objects.select_related("booking"), pk=object_id)
        booking = item.booking
        checked = None
        form = ReviewDecisionForm(request.POST or None, candidates=item.candidates or [])
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            if item.review_state != KommoLink.ReviewState.OPEN:
                self.message_user(request, "Someone already resolved this meeting.", messages.WARNING)
                return HttpResponseRedirect(reverse("admin:crm_reviewitem_changelist"))
            if form.is_valid():
                shown_already = not form.needs_live_check
                if form.cleaned_data["choice"] == OTHER:
                    # Every time, also on the confirming POST: the hidden "checked" id is the browser's word.
                    checked = self._check_typed_deal(request, form)
                if shown_already and (form.cleaned_data["choice"] != OTHER or checked is not None):
                    response = self._decide(request, item, form)
                    if response is not None:
                        return response
        context = {
            **self.admin_site.each_context(request),
            "title": f"Choose the deal for {booking.invitee_name}’s meeting",
            "opts": self.model._meta,
            "item": item,
            "booking": booking,
            "start": timezone.localtime(booking.start_at),
            # Names of pipelines, stages and users come from Kommo: looked up only to show the page.
            "candidates": describe_deals(item.candidates or []),
            "form": form,
            "checked": checked,
            "can_resolve": self.has_change_permission(request) and item.review_state == KommoLink.ReviewState.OPEN,
            "resolved": item.review_state != KommoLink.ReviewState.OPEN,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/crm/reviewitem/review.html", context)

    def _check_typed_deal(self, request: HttpRequest, form: ReviewDecisionForm) -> dict | None:
        deal_id = form.cleaned_data["deal_id"]
        try:
            deal = check_deal(deal_id)
        except SyncError as exc:
            form.add_error("deal_id", f"Could not ask Kommo about deal {deal_id} right now ({exc}). Try again.")
            return None
        if deal is None:
            form.add_error("deal_id", f"Kommo has no deal {deal_id}. Check the number.")
            return None
        # Shown to staff before saving; saving again with the same id confirms it.
        form.data = form.data.copy()
        form.data["checked_deal_id"] = str(deal_id)
        return deal

    def _decide(self, request: HttpRequest, item: KommoLink, form: ReviewDecisionForm) -> HttpResponse | None:
        data = form.cleaned_data
        booking = item.booking
        try:
            if data["choice"] == SKIP:
                review.skip(booking, request.user)
                done = "skipped: nothing will be written to Kommo for it"
            elif data["choice"] == INBOUND_LEAD:
                review.create_inbound_lead_for(booking, request.user)
                done = "a new incoming lead will be created"
            else:
                review.assign_deal(booking, data["deal_id"], request.user, remember=data.get("remember", False))
                done = f"assigned to deal {data['deal_id']}"
        except review.ReviewError as exc:
            form.add_error(None, str(exc))
            return None
        result = resync(booking)
        self.message_user(
            request,
            f"{booking.invitee_name}’s meeting {done}; sync {result.outcome if result else 'not started'}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:crm_reviewitem_changelist"))


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


from crm import oauth_admin  # noqa: E402, F401  (registers the Kommo connection page)
