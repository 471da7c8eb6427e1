"""The bookings admin: one row per invitee's booking, its sync health first, and a "Sync again" button.

Calendly is the source of truth, so nothing here is editable: the only actions are syncing again (here)
and replaying events (events admin), both through `bookings.processing`.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from bookings.admin.common import folded, health_badge, local, local_short, local_two_lines, status_badge
from bookings.admin.filters import HostFilter, LinkProblemFilter, SyncHealthFilter
from bookings.admin_extensions import booking_column, booking_columns, booking_search_fields
from bookings.health import HEALTH_EXPLAINED, SyncHealth, health_of, plain_error, with_sync_health
from bookings.models import Booking, WebhookEvent
from bookings.outcome import describe, repairs_since, run_inline
from bookings.verification import resync
from calsync.admin_mixins import ReadOnlyAdminMixin, ReplayPermissionMixin


def booking_timeline(booking: Booking) -> list[tuple]:
    """(when, what) lines for a booking's history: deliveries, processing steps, the reschedule chain."""
    lines: list[tuple] = []
    chain = booking.chain()
    for other in chain:
        if other.pk != booking.pk:
            relation = "Moved here from" if chain.index(other) < chain.index(booking) else "Moved to"
            lines.append((other.updated_at, f"{relation} {other}"))
    events = WebhookEvent.objects.filter(booking=booking).prefetch_related("processing_attempts")
    for event in events:
        times = f" (sent {event.deliveries} times)" if event.deliveries > 1 else ""
        lines.append((event.received_at, f"Calendly sent {event.kind}{times} — event #{event.pk}"))
        for attempt in event.processing_attempts.all():
            for step in attempt.steps or []:
                if step.get("step") == "booking" or step.get("booking") not in (None, booking.pk):
                    continue
                if step.get("ok"):
                    text = f"✔ {step['step']}: {step.get('detail', '')}"
                else:
                    text = f"✘ {step['step']}: {plain_error(step.get('detail', ''))}"
                lines.append((attempt.finished_at or attempt.started_at, text))
    for drift in booking.drifts.all():
        lines.append(
            (
                drift.found_at,
                f"⚠ {drift.service} changed outside calsync: {drift.detail} [{drift.get_outcome_display()}]",
            )
        )
    return sorted(lines, key=lambda line: line[0])


def successor(booking: Booking) -> Booking | None:
    """The booking this one was moved to (the newer half of a reschedule), if calsync has it."""
    if booking.status != Booking.Status.RESCHEDULED:
        return None
    return Booking.objects.filter(rescheduled_from=booking).first()


EXTENSION_COLUMNS = "(other apps' columns)"  # where the registered columns go in a fieldset


def _expand(fields: tuple, names: tuple[str, ...]) -> tuple:
    return tuple(name for field in fields for name in (names if field == EXTENSION_COLUMNS else (field,)))


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdminMixin, ReplayPermissionMixin, admin.ModelAdmin):
    # Other apps' columns (the Kommo deal, the Zoom meeting) follow, from bookings.admin_extensions.
    list_display = ("health", "when", "who", "state")
    list_display_links = ("when",)
    list_filter = (SyncHealthFilter, "status", "crm_status", HostFilter, LinkProblemFilter, "event_type_name",
                   "start_at")  # fmt: skip
    search_fields = ("invitee_email", "invitee_name", "invitee_uri", "event_uri", "host_email")
    date_hierarchy = "start_at"
    actions = ["sync_again"]
    fieldsets = (
        (None, {"fields": ("health_detail", "summary", "state", EXTENSION_COLUMNS, "link_problem")}),
        ("Meeting", {"fields": ("event_type_name", "starts", "ends", "invitee_timezone", "host_name",
                                "host_email", "location_type", "conference_join_url")}),
        ("Invitee", {"fields": ("invitee_name", "invitee_email", "invitee_phone", "guests", "answers")}),
        ("Cancellation", {"fields": ("canceled_by", "canceler_type", "cancel_reason", "canceled_at")}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Technical details", {"classes": ("collapse",), "fields": ("invitee_uri", "event_uri", "event_type_uri",
                                                                    "previous_invitee_uri", "next_invitee_uri")}),
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Booking]:
        return with_sync_health(super().get_queryset(request))

    def get_search_fields(self, request: HttpRequest):
        return (*self.search_fields, *booking_search_fields())

    def get_urls(self):
        urls = super().get_urls()
        view = self.admin_site.admin_view(require_POST(self.sync_again_view))
        return [path("<path:object_id>/sync-again/", view, name="bookings_booking_sync_again"), *urls]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra = {"can_sync_again": self.has_replay_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def sync_again_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The "Sync again" button of the booking's page (POST, CSRF-checked like every admin form)."""
        if not self.has_replay_permission(request):
            raise PermissionDenied
        booking = get_object_or_404(Booking, pk=object_id)
        pressed = timezone.now()
        outcome = describe(resync(booking, inline=run_inline()), subject=f"{booking.invitee_name}’s meeting")
        repaired = repairs_since(booking, pressed) if outcome.level == messages.SUCCESS else ""
        self.message_user(request, f"{outcome.text} {repaired}".strip(), outcome.level)
        return HttpResponseRedirect(reverse("admin:bookings_booking_change", args=[booking.pk]))

    # --- columns -----------------------------------------------------------------------------------

    @admin.display(description="sync health", ordering="sync_health")
    def health(self, obj: Booking) -> str:
        return health_badge(health_of(obj))

    @admin.display(description="meeting time", ordering="start_at")
    def when(self, obj: Booking) -> str:
        return local_two_lines(obj.start_at)

    @admin.display(description="invitee, meeting and host", ordering="invitee_name")
    def who(self, obj: Booking) -> str:
        # The event type and both e-mails share a cell: the list fits 1400 px without scrolling.
        return format_html(
            "{}<br><small>{}<br>{} with {}</small>",
            obj.invitee_name,
            obj.invitee_email,
            obj.event_type_name or "Meeting",
            obj.host_email or obj.host_name or "—",
        )

    @admin.display(description="status", ordering="status")
    def state(self, obj: Booking) -> str:
        if obj.status == Booking.Status.RESCHEDULED:
            new = successor(obj)
            if new is not None:
                url = reverse("admin:bookings_booking_change", args=[new.pk])
                return format_html('Moved to <a href="{}">{}</a>', url, local_short(new.start_at))
            return status_badge(obj.status, "Moved; the new booking has not arrived yet")
        crm = obj.get_crm_status_display().lower()
        return format_html("{}<br><small>Kommo: {}</small>", status_badge(obj.status, obj.get_status_display()), crm)

    def __getattr__(self, name: str):
        """An extension column, looked up by name like the admin's own display methods."""
        column = booking_column(name)
        if column is None:
            raise AttributeError(name)
        return admin.display(description=column.description)(column.render)

    def get_list_display(self, request):
        return (*self.list_display, *(column.name for column in booking_columns()))

    def get_list_select_related(self, request):
        return tuple(dict.fromkeys(r for column in booking_columns() for r in column.select_related)) or False

    def get_fieldsets(self, request, obj=None):
        names = tuple(column.name for column in booking_columns())
        fieldsets = []
        for title, options in self.fieldsets:
            fields = _expand(options["fields"], names)
            if obj is not None:
                if title == "Cancellation" and obj.status != Booking.Status.CANCELED:
                    continue  # a live or moved booking has nothing to show there
                if obj.status != Booking.Status.SCHEDULED or not obj.conference_join_url:
                    fields = tuple(f for f in fields if f != "conference_join_url")  # no stale join link
                empty = {
                    "link_problem": not obj.link_problem,
                    "answers": not obj.questions,
                    "guests": not obj.guest_emails,
                    "invitee_phone": not obj.invitee_phone,
                }
                fields = tuple(f for f in fields if not empty.get(f, False))  # no empty rows either
            fieldsets.append((title, {**options, "fields": fields}))
        return fieldsets

    # --- the page ----------------------------------------------------------------------------------

    @admin.display(description="sync health")
    def health_detail(self, obj: Booking) -> str:
        health = health_of(obj)
        error = getattr(obj, "newest_event_error", "") or ""
        parts = [format_html("{} — {}", health_badge(health), HEALTH_EXPLAINED[health])]
        if health in (SyncHealth.NEEDS_ATTENTION, SyncHealth.RETRYING) and error:
            parts.append(format_html("<div>Why: {}</div>", plain_error(error)))
            parts.append(folded("Technical detail", error))
        return format_html_join("", "{}", ((part,) for part in parts))

    @admin.display(description="in short")
    def summary(self, obj: Booking) -> str:
        when = local(obj.start_at)
        if obj.status == Booking.Status.RESCHEDULED:
            new = successor(obj)
            if new is not None:
                url = reverse("admin:bookings_booking_change", args=[new.pk])
                return format_html(
                    "{}’s {} was moved from {} to <a href=\"{}\">{}</a>.",
                    obj.invitee_name, obj.event_type_name or "meeting", when, url, local(new.start_at),
                )  # fmt: skip
        state = {"scheduled": "is booked for", "canceled": "was cancelled; it was", "rescheduled": "was moved; it was"}
        text = f"{obj.invitee_name}’s {obj.event_type_name or 'meeting'} {state.get(obj.status, '')} {when}."
        if obj.crm_status == Booking.CrmStatus.NEEDS_REVIEW:
            text += " calsync needs you to choose its Kommo deal (Review queue)."
        if obj.link_problem:
            text += " Check it: calsync ignored a reschedule pointer (see “reschedule link problem”)."
        return text

    @admin.display(description="starts")
    def starts(self, obj: Booking) -> str:
        return local(obj.start_at)

    @admin.display(description="ends")
    def ends(self, obj: Booking) -> str:
        return local(obj.end_at)

    @admin.display(description="guests")
    def guests(self, obj: Booking) -> str:
        return ", ".join(obj.guest_emails) or "—"

    @admin.display(description="answers")
    def answers(self, obj: Booking) -> str:
        return format_html_join(
            "", "<div><strong>{}</strong>: {}</div>", ((q["question"], q["answer"]) for q in obj.questions)
        )

    @admin.display(description="what happened, oldest first")
    def timeline(self, obj: Booking) -> str:
        return format_html_join("", "<div>{} — {}</div>", ((local(when), what) for when, what in booking_timeline(obj)))

    def get_readonly_fields(self, request, obj=None):
        return [name for _, options in self.get_fieldsets(request, obj) for name in options["fields"]]

    @admin.action(description="Sync again with Kommo and Zoom", permissions=["replay"])
    def sync_again(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        inline = run_inline(queryset.count())
        for booking in queryset:
            outcome = describe(resync(booking, inline=inline), subject=f"{booking.invitee_name}’s meeting")
            self.message_user(request, outcome.text, outcome.level)
