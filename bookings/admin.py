"""Admin for webhook events and bookings (read-only: Calendly is the source of truth)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from bookings.models import Booking, ProcessingAttempt, WebhookEvent
from bookings.processing import replay


class ProcessingAttemptInline(admin.TabularInline):
    model = ProcessingAttempt
    extra = 0
    can_delete = False
    fields = ("number", "trigger", "started_at", "finished_at", "outcome", "steps", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("id", "received_at", "kind", "invitee_email", "status", "attempts", "short_error")
    list_filter = ("status", "kind", "source", "received_at")
    search_fields = ("invitee_email", "invitee_uri", "event_uri")
    date_hierarchy = "received_at"
    actions = ["replay_selected"]
    inlines = [ProcessingAttemptInline]
    exclude = ("raw_body", "payload")
    readonly_fields = (
        "kind",
        "source",
        "invitee_uri",
        "event_uri",
        "invitee_email",
        "calendly_created_at",
        "dedupe_key",
        "deliveries",
        "status",
        "attempts",
        "next_attempt_at",
        "processing_started_at",
        "received_at",
        "processed_at",
        "booking",
        "last_error",
        "last_traceback",
        "pretty_payload",
    )

    @admin.display(description="last error")
    def short_error(self, obj: WebhookEvent) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.display(description="payload")
    def pretty_payload(self, obj: WebhookEvent) -> str:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False) if obj.payload is not None else obj.raw_text()
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay selected events")
    def replay_selected(self, request, queryset):
        for event in queryset:
            result = replay(event)
            level = messages.WARNING if result.outcome in ("failed", "skipped") else messages.SUCCESS
            self.message_user(request, str(result), level)


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = (
        "start_at",
        "invitee_name",
        "invitee_email",
        "event_type_name",
        "host_email",
        "status",
        "crm_status",
    )
    list_filter = ("status", "crm_status", "event_type_name", "start_at")
    search_fields = ("invitee_email", "invitee_name", "invitee_uri", "event_uri")
    date_hierarchy = "start_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
