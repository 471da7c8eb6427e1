"""Admin for webhook events and bookings, written for sales ops rather than engineers.

Every detail page answers "what happened to this meeting, and what do I do now" in words first; the raw
payload is at the bottom, read-only. Calendly is the source of truth, so nothing here is editable:
the only actions are replaying events and syncing bookings again (both through `bookings.processing`).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from bookings.models import Booking, ProcessingAttempt, WebhookEvent
from bookings.processing import replay, resync

STATUS_COLOURS = {
    "done": "#2e7d32",
    "ignored": "#616161",
    "received": "#1565c0",
    "processing": "#1565c0",
    "failed": "#c62828",
    "scheduled": "#2e7d32",
    "canceled": "#c62828",
    "rescheduled": "#ef6c00",
}


def status_badge(value: str, label: str) -> str:
    colour = STATUS_COLOURS.get(value, "#424242")
    return format_html('<strong style="color:{}">{}</strong>', colour, label)


def local(dt) -> str:
    return timezone.localtime(dt).strftime("%a %d %b %Y, %H:%M %Z") if dt else "—"


def event_explanation(event: WebhookEvent) -> tuple[str, str]:
    """(what happened, what to do now) in plain words."""
    if event.status == WebhookEvent.Status.DONE:
        return "Processed: the booking, Kommo and Zoom are up to date with this delivery.", "Nothing."
    if event.status == WebhookEvent.Status.IGNORED:
        return f"Stored but not acted on: {event.last_error or 'calsync does not handle this kind.'}", "Nothing."
    if event.status in (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING):
        return "Waiting for or being processed by the worker.", "Nothing; it should finish within a minute."
    if event.next_attempt_at is not None:
        return (
            f"Failed (attempt {event.attempts}); it will be retried automatically at {local(event.next_attempt_at)}.",
            "Nothing unless it keeps failing. To retry now, use “Replay selected events”.",
        )
    return (
        f"Failed and will not be retried automatically (after {event.attempts} attempt(s)).",
        "Read the error below, fix its cause (a setting, a token, a deal in Kommo), then “Replay selected events”.",
    )


class ProcessingAttemptInline(admin.TabularInline):
    model = ProcessingAttempt
    extra = 0
    can_delete = False
    verbose_name_plural = "Processing history"
    fields = ("number", "trigger", "started_at", "finished_at", "outcome", "what_ran", "error")
    readonly_fields = fields

    @admin.display(description="steps")
    def what_ran(self, obj: ProcessingAttempt) -> str:
        return format_html_join(
            "",
            "<div>{} {} <em>{}</em></div>",
            ((("✔" if s.get("ok") else "✘"), s.get("step", "?"), s.get("detail", "")) for s in obj.steps or []),
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "received_at",
        "kind",
        "invitee_email",
        "event_type",
        "coloured_status",
        "attempts",
        "short_error",
    )
    list_filter = ("status", "kind", "source", "received_at")
    search_fields = ("invitee_email", "invitee_uri", "event_uri")
    date_hierarchy = "received_at"
    list_select_related = ("booking",)
    actions = ["replay_selected"]
    inlines = [ProcessingAttemptInline]
    fieldsets = (
        (None, {"fields": ("what_happened", "what_to_do", "booking_link")}),
        (
            "Delivery",
            {
                "fields": (
                    "kind",
                    "source",
                    "invitee_email",
                    "invitee_uri",
                    "event_uri",
                    "received_at",
                    "calendly_created_at",
                    "deliveries",
                )
            },
        ),
        ("Processing", {"fields": ("status", "attempts", "next_attempt_at", "processed_at", "last_error")}),
        ("Technical details", {"classes": ("collapse",), "fields": ("last_traceback", "dedupe_key", "pretty_payload")}),
    )
    readonly_fields = (
        "what_happened", "what_to_do", "booking_link", "kind", "source", "invitee_email", "invitee_uri",
        "event_uri", "received_at", "calendly_created_at", "deliveries", "status", "attempts",
        "next_attempt_at", "processed_at", "last_error", "last_traceback", "dedupe_key", "pretty_payload",
    )  # fmt: skip

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: WebhookEvent) -> str:
        label = "needs attention" if obj.needs_attention else obj.get_status_display()
        return status_badge(obj.status, label)

    @admin.display(description="event type")
    def event_type(self, obj: WebhookEvent) -> str:
        return obj.booking.event_type_name if obj.booking_id else "—"

    @admin.display(description="last error")
    def short_error(self, obj: WebhookEvent) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.display(description="what happened")
    def what_happened(self, obj: WebhookEvent) -> str:
        return event_explanation(obj)[0]

    @admin.display(description="what to do now")
    def what_to_do(self, obj: WebhookEvent) -> str:
        return event_explanation(obj)[1]

    @admin.display(description="booking")
    def booking_link(self, obj: WebhookEvent) -> str:
        if not obj.booking_id:
            return "—"
        return format_html('<a href="../../booking/{}/change/">{}</a>', obj.booking_id, obj.booking)

    @admin.display(description="payload (as Calendly sent it)")
    def pretty_payload(self, obj: WebhookEvent) -> str:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False) if obj.payload is not None else obj.raw_text()
        return format_html("<pre style='white-space:pre-wrap;max-height:40em;overflow:auto'>{}</pre>", text)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for event in queryset.order_by("received_at", "pk"):
            result = replay(event)
            level = messages.WARNING if result.outcome in ("failed", "skipped") else messages.SUCCESS
            self.message_user(request, str(result), level)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.replay_webhookevent")


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ("start_at", "invitee_name", "invitee_email", "event_type_name", "host_email", "coloured_status",
                    "crm_status")  # fmt: skip
    list_filter = ("status", "crm_status", "event_type_name", "start_at")
    search_fields = ("invitee_email", "invitee_name", "invitee_uri", "event_uri", "host_email")
    date_hierarchy = "start_at"
    actions = ["sync_again"]
    exclude = ("sync_lock_token", "sync_lock_expires_at")

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: Booking) -> str:
        return status_badge(obj.status, obj.get_status_display())

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Sync again with Kommo and Zoom", permissions=["replay"])
    def sync_again(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        for booking in queryset:
            result = resync(booking)
            if result is None:
                self.message_user(request, f"{booking}: no stored event to replay", messages.WARNING)
            else:
                level = messages.WARNING if result.outcome in ("failed", "skipped") else messages.SUCCESS
                self.message_user(request, f"{booking}: {result}", level)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.replay_webhookevent")
