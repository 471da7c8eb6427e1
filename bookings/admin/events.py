"""The webhook events admin: every Calendly delivery, what became of it, and a "Replay" button."""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from bookings.admin.common import folded, local, local_short, status_badge
from bookings.health import plain_error
from bookings.models import ProcessingAttempt, WebhookEvent
from bookings.outcome import describe, run_inline
from bookings.processing import replay
from calsync.admin_mixins import ReadOnlyAdminMixin, ReplayPermissionMixin


def event_explanation(event: WebhookEvent) -> tuple[str, str]:
    """(what happened, what to do now) in plain words."""
    if event.status == WebhookEvent.Status.DONE:
        return "Processed: the booking, Kommo and Zoom are up to date with this delivery.", "Nothing."
    if event.status == WebhookEvent.Status.IGNORED:
        return f"Stored but not acted on: {event.last_error or 'calsync does not handle this kind.'}", "Nothing."
    if event.status in (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING):
        return "Waiting for or being processed by the worker.", "Nothing; it should finish within a minute."
    why = plain_error(event.last_error)
    if event.next_attempt_at is not None:
        return (
            f"Failed (attempt {event.attempts}): {why} It will be retried automatically at "
            f"{local(event.next_attempt_at)}.",
            "Nothing unless it keeps failing. To retry now, press “Replay”.",
        )
    return (
        f"Failed and will not be retried automatically (after {event.attempts} attempt(s)): {why}",
        "Fix its cause (a setting, a token, a deal in Kommo), then press “Replay”.",
    )


class ProcessingAttemptInline(admin.TabularInline):
    model = ProcessingAttempt
    extra = 0
    can_delete = False
    verbose_name_plural = "Processing history"
    fields = ("number", "trigger", "started_at", "finished_at", "outcome", "what_ran", "why")
    readonly_fields = fields

    @admin.display(description="steps")
    def what_ran(self, obj: ProcessingAttempt) -> str:
        return format_html_join(
            "",
            "<div>{} {} <em>{}</em></div>",
            (
                ("✔" if s.get("ok") else "✘", s.get("step", "?"), s.get("detail", "") if s.get("ok") else "failed")
                for s in obj.steps or []
            ),
        )

    @admin.display(description="error")
    def why(self, obj: ProcessingAttempt) -> str:
        return folded(plain_error(obj.error), obj.error) if obj.error else "—"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, ReplayPermissionMixin, admin.ModelAdmin):
    list_display = ("coloured_status", "received", "delivery", "attempts", "short_error")
    list_display_links = ("received",)
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
        ("Processing", {"fields": ("status", "attempts", "next_attempt_at", "processed_at")}),
        (
            "Technical details",
            {"classes": ("collapse",), "fields": ("last_error", "last_traceback", "dedupe_key", "pretty_payload")},
        ),
    )
    readonly_fields = (
        "what_happened", "what_to_do", "booking_link", "kind", "source", "invitee_email", "invitee_uri",
        "event_uri", "received_at", "calendly_created_at", "deliveries", "status", "attempts",
        "next_attempt_at", "processed_at", "last_error", "last_traceback", "dedupe_key", "pretty_payload",
    )  # fmt: skip

    def get_urls(self):
        urls = super().get_urls()
        replay_view = self.admin_site.admin_view(require_POST(self.replay_view))
        return [path("<path:object_id>/replay/", replay_view, name="bookings_webhookevent_replay"), *urls]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra = {"can_replay": self.has_replay_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The "Replay" button of the event's page (POST, CSRF-checked like every admin form)."""
        if not self.has_replay_permission(request):
            raise PermissionDenied
        event = get_object_or_404(WebhookEvent, pk=object_id)
        outcome = describe(replay(event, inline=run_inline()), subject=f"Event #{event.pk}")
        self.message_user(request, outcome.text, outcome.level)
        return HttpResponseRedirect(reverse("admin:bookings_webhookevent_change", args=[event.pk]))

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: WebhookEvent) -> str:
        label = "needs attention" if obj.needs_attention else obj.get_status_display()
        return status_badge(obj.status, label)

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: WebhookEvent) -> str:
        return local_short(obj.received_at)

    @admin.display(description="delivery")
    def delivery(self, obj: WebhookEvent) -> str:
        event_type = obj.booking.event_type_name if obj.booking_id else ""
        return format_html(
            "{}<br><small>{}{}</small>", obj.kind, obj.invitee_email or "—", f" · {event_type}" if event_type else ""
        )

    @admin.display(description="why it failed")
    def short_error(self, obj: WebhookEvent) -> str:
        if obj.status != WebhookEvent.Status.FAILED:
            return ""
        text = plain_error(obj.last_error)
        return (text[:100] + "…") if len(text) > 100 else text

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
        url = reverse("admin:bookings_booking_change", args=[obj.booking_id])
        return format_html('<a href="{}">{}</a>', url, obj.booking)

    @admin.display(description="payload (as Calendly sent it)")
    def pretty_payload(self, obj: WebhookEvent) -> str:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False) if obj.payload is not None else obj.raw_text()
        # SQLite keeps a lone surrogate (escaped) in a payload stored before the parser refused them; the
        # page cannot be encoded with it: show "?" rather than answer 500.
        text = text.encode("utf-8", "replace").decode("utf-8")
        return format_html("<pre style='white-space:pre-wrap;max-height:40em;overflow:auto'>{}</pre>", text)

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        # Inline (unless set off), so the list shown next says where each event stands now: a "failed"
        # filter does not come back empty for events that are only waiting in the queue.
        # A long selection is queued (and says so): the request must not outlast the web server's timeout.
        inline = run_inline(queryset.count())
        for event in queryset.order_by("received_at", "pk"):
            outcome = describe(replay(event, inline=inline), subject=f"Event #{event.pk}")
            self.message_user(request, outcome.text, outcome.level)
