"""The review queue: meetings whose Kommo deal a person must choose, sorted by how soon they happen."""

from __future__ import annotations

import threading

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from bookings.outcome import describe, run_inline
from bookings.verification import resync
from calsync.errors import SyncError
from crm import review
from crm.deal_names import check_typed_deal, describe_deals
from crm.forms import INBOUND_LEAD, OTHER, SKIP, ReviewDecisionForm
from crm.models import KommoLink, ReviewItem
from crm.review_display import (
    REASONS,
    is_soon,
    meeting_in,
    reason_kind,
    reason_sentence,
    responsible_user_ids,
    user_names,
    waited,
)

_page = threading.local()  # Kommo's user names, looked up once per list page


def review_count(user) -> int:
    """For the admin index's banner (registered in CrmConfig.ready)."""
    return ReviewItem.objects.count() if user.has_perm("crm.view_reviewitem") else 0


def review_sentence(count: int) -> str:
    meetings = f"{count} meeting waits" if count == 1 else f"{count} meetings wait"
    return f"{meetings} for you to choose the Kommo deal"


def review_url() -> str:
    return reverse("admin:crm_reviewitem_changelist")


class ReasonFilter(admin.SimpleListFilter):
    title = "why it waits"
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return list(REASONS.items())

    def queryset(self, request, queryset):
        if self.value() not in REASONS:
            return queryset
        pks = [pk for pk, reason in queryset.values_list("pk", "match_reason") if reason_kind(reason) == self.value()]
        return queryset.filter(pk__in=pks)


class HostFilter(admin.SimpleListFilter):
    title = "host"
    parameter_name = "host"

    def lookups(self, request, model_admin):
        hosts = ReviewItem.objects.values_list("booking__host_email", "booking__host_name").distinct()
        return sorted({email: name or email for email, name in hosts if email}.items(), key=lambda i: i[1].lower())

    def queryset(self, request, queryset):
        return queryset.filter(booking__host_email=self.value()) if self.value() else queryset


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ("meeting_time", "invitee", "people", "why", "waited_for")
    list_display_links = None
    list_select_related = ("booking",)
    list_filter = (ReasonFilter, HostFilter, ("booking__start_at", admin.DateFieldListFilter))
    search_fields = ("booking__invitee_email", "booking__invitee_name")
    actions = ["skip_selected"]

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        # Not the `ordering` attribute: the system check looks for `urgency` among the model's fields.
        return ("urgency", "booking__start_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewItem]:
        # Meetings still ahead first, the soonest on top; those already past after them.
        ahead = When(booking__start_at__gte=timezone.now(), then=Value(0))
        upcoming = Case(ahead, default=Value(1), output_field=IntegerField())
        # Not super(): it orders by `ordering` before the annotation it names exists.
        return ReviewItem.objects.annotate(urgency=upcoming).order_by(*self.get_ordering(request))

    def changelist_view(self, request: HttpRequest, extra_context=None):
        _page.user_names = None
        try:
            return super().changelist_view(request, extra_context)
        finally:
            _page.user_names = None

    @admin.display(description="meeting", ordering="booking__start_at")
    def meeting_time(self, obj: ReviewItem) -> str:
        start = obj.booking.start_at
        colour = "#c62828" if is_soon(start) else "inherit"
        return format_html(
            '<strong class="meeting-in{}" style="color:{}">{}</strong><br><small>{}</small>',
            " soon" if is_soon(start) else "",
            colour,
            meeting_in(start),
            timezone.localtime(start).strftime("%a %d %b, %H:%M %Z"),
        )

    @admin.display(description="invitee and meeting")
    def invitee(self, obj: ReviewItem) -> str:
        booking = obj.booking
        url = reverse("admin:bookings_booking_change", args=[booking.pk])
        return format_html(
            '{}<br><small>{} · <a href="{}" class="booking-link">{}</a></small>',
            booking.invitee_name,
            booking.invitee_email,
            url,
            booking.event_type_name or "the booking",
        )

    @admin.display(description="host / deal owner", ordering="booking__host_email")
    def people(self, obj: ReviewItem) -> str:
        host = obj.booking.host_name or obj.booking.host_email or "—"
        return format_html("{}<br><small>Deals: {}</small>", host, self.responsible(obj))

    def responsible(self, obj: ReviewItem) -> str:
        """The Kommo users responsible for the deal or its candidates, by name."""
        ids = responsible_user_ids(obj)
        if not ids:
            return "—"
        if getattr(_page, "user_names", None) is None:
            _page.user_names = user_names()
        return ", ".join(_page.user_names.get(i, f"user {i}") for i in ids)

    @admin.display(description="why it waits")
    def why(self, obj: ReviewItem) -> str:
        url = reverse("admin:crm_reviewitem_change", args=[obj.pk])
        return format_html(
            '{}<br><a class="button choose-deal" href="{}" style="display:inline-block;margin-top:4px">'
            "Choose the deal</a>",
            reason_sentence(obj.match_reason, obj.booking.invitee_name),
            url,
        )

    @admin.display(description="waiting for", ordering="updated_at")
    def waited_for(self, obj: ReviewItem) -> str:
        return waited(obj.updated_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("crm.resolve_reviewitem")

    @admin.action(description="Skip: write nothing to Kommo for the selected meetings", permissions=["change"])
    def skip_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        names = []
        inline = run_inline(queryset.count())
        for item in queryset.select_related("booking"):
            review.skip(item.booking, request.user)
            resync(item.booking, inline=inline)
            names.append(f"{item.booking.invitee_name}’s")
        if names:
            self.message_user(
                request,
                f"Skipped {', '.join(names)} meeting{'s' if len(names) != 1 else ''}: "
                "calsync writes nothing to Kommo for them.",
                messages.SUCCESS,
            )

    # --- the review screen ---------------------------------------------------------------------------

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
                    checked = self._check_typed_deal(form, booking.invitee_email)
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
            "booking_url": reverse("admin:bookings_booking_change", args=[booking.pk]),
            "start": timezone.localtime(booking.start_at),
            "meeting_in": meeting_in(booking.start_at),
            "soon": is_soon(booking.start_at),
            "reason": reason_sentence(item.match_reason, booking.invitee_name),
            # Names of pipelines, stages and users come from Kommo: looked up only to show the page.
            "candidates": describe_deals(item.candidates or []),
            "form": form,
            "checked": checked,
            "can_resolve": self.has_change_permission(request) and item.review_state == KommoLink.ReviewState.OPEN,
            "resolved": item.review_state != KommoLink.ReviewState.OPEN,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/crm/reviewitem/review.html", context)

    def _check_typed_deal(self, form: ReviewDecisionForm, email: str) -> dict | None:
        deal_id = form.cleaned_data["deal_id"]
        try:
            deal = check_typed_deal(deal_id, email)
        except SyncError as exc:
            form.add_error("deal_id", f"Could not ask Kommo about deal {deal_id} right now ({exc}). Try again.")
            return None
        if deal is None:
            form.add_error("deal_id", f"Kommo has no deal {deal_id}. Check the number.")
            return None
        # Shown to staff before saving; saving again with the same id confirms it.
        form.data = form.data.copy()
        form.data["checked_deal_id"] = str(deal_id)
        form.data["choice"] = OTHER
        return deal

    def _decide(self, request: HttpRequest, item: KommoLink, form: ReviewDecisionForm) -> HttpResponse | None:
        data = form.cleaned_data
        booking = item.booking
        name = booking.invitee_name
        try:
            if data["choice"] == SKIP:
                review.skip(booking, request.user)
                self.message_user(
                    request, f"{name}’s meeting is skipped: calsync writes nothing to Kommo for it.", messages.SUCCESS
                )
                resync(booking, inline=run_inline())
                return HttpResponseRedirect(reverse("admin:crm_reviewitem_changelist"))
            if data["choice"] == INBOUND_LEAD:
                review.create_inbound_lead_for(booking, request.user)
                done = f"A new incoming lead is being made in Kommo for {name}’s meeting."
            else:
                review.assign_deal(booking, data["deal_id"], request.user, remember=data.get("remember", False))
                done = f"{name}’s meeting is assigned to deal {data['deal_id']}."
        except review.ReviewError as exc:
            form.add_error(None, str(exc))
            return None
        outcome = describe(resync(booking, inline=run_inline()), subject="Sync")
        self.message_user(request, f"{done} {outcome.text}", outcome.level)
        return HttpResponseRedirect(reverse("admin:crm_reviewitem_changelist"))
