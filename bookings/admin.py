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

from bookings.admin_extensions import booking_column, booking_columns
from bookings.models import Booking, ProcessingAttempt, WebhookEvent
from bookings.processing import replay
from bookings.verification import resync
from calsync.admin_mixins import ReadOnlyAdminMixin, ReplayPermissionMixin

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
class WebhookEventAdmin(ReadOnlyAdminMixin, ReplayPermissionMixin, admin.ModelAdmin):
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
        # SQLite keeps a lone surrogate (escaped) in a payload stored before the parser refused them; the
        # page cannot be encoded with it: show "?" rather than answer 500.
        text = text.encode("utf-8", "replace").decode("utf-8")
        return format_html("<pre style='white-space:pre-wrap;max-height:40em;overflow:auto'>{}</pre>", text)

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for event in queryset.order_by("received_at", "pk"):
            result = replay(event)
            level = messages.WARNING if result.outcome in ("failed", "skipped") else messages.SUCCESS
            self.message_user(request, str(result), level)


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
                mark = "✔" if step.get("ok") else "✘"
                lines.append(
                    (attempt.finished_at or attempt.started_at, f"{mark} {step['step']}: {step.get('detail', '')}")
                )
    for drift in booking.drifts.all():
        lines.append(
            (
                drift.found_at,
                f"⚠ {drift.service} changed outside calsync: {drift.detail} [{drift.get_outcome_display()}]",
            )
        )
    return sorted(lines, key=lambda line: line[0])


EXTENSION_COLUMNS = "(other apps' columns)"  # where the registered columns go in a fieldset


def _expand(fields: tuple, names: tuple[str, ...]) -> tuple:
    return tuple(name for field in fields for name in (names if field == EXTENSION_COLUMNS else (field,)))


class LinkProblemFilter(admin.SimpleListFilter):
    title = "reschedule link problem"
    parameter_name = "link_problem"

    def lookups(self, request, model_admin):
        return [("yes", "Needs a look"), ("no", "None")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(link_problem="")
        if self.value() == "no":
            return queryset.filter(link_problem="")
        return queryset


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdminMixin, ReplayPermissionMixin, admin.ModelAdmin):
    # Other apps' columns (the Kommo deal, the Zoom meeting) follow, from bookings.admin_extensions.
    list_display = ("start_at", "invitee_name", "invitee_email", "event_type_name", "host_email", "coloured_status",
                    "crm_status")  # fmt: skip
    list_filter = ("status", "crm_status", LinkProblemFilter, "event_type_name", "start_at")
    search_fields = ("invitee_email", "invitee_name", "invitee_uri", "event_uri", "host_email")
    date_hierarchy = "start_at"
    actions = ["sync_again"]
    fieldsets = (
        (None, {"fields": ("summary", "coloured_status", "crm_status", EXTENSION_COLUMNS, "link_problem")}),
        ("Meeting", {"fields": ("event_type_name", "start_at", "end_at", "invitee_timezone", "host_name",
                                "host_email", "location_type", "conference_join_url")}),
        ("Invitee", {"fields": ("invitee_name", "invitee_email", "invitee_phone", "guests", "answers")}),
        ("Cancellation", {"fields": ("canceled_by", "canceler_type", "cancel_reason", "canceled_at")}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Technical details", {"classes": ("collapse",), "fields": ("invitee_uri", "event_uri", "event_type_uri",
                                                                    "previous_invitee_uri", "next_invitee_uri")}),
    )  # fmt: skip

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: Booking) -> str:
        return status_badge(obj.status, obj.get_status_display())

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
        return [(title, {**options, "fields": _expand(options["fields"], names)}) for title, options in self.fieldsets]

    @admin.display(description="in short")
    def summary(self, obj: Booking) -> str:
        when = local(obj.start_at)
        state = {"scheduled": "is booked for", "canceled": "was cancelled; it was", "rescheduled": "was moved; it was"}
        text = f"{obj.invitee_name}’s {obj.event_type_name or 'meeting'} {state.get(obj.status, '')} {when}."
        if obj.crm_status == Booking.CrmStatus.NEEDS_REVIEW:
            text += " calsync needs you to choose its Kommo deal (Review queue)."
        if obj.link_problem:
            text += " Check it: calsync ignored a reschedule pointer (see “reschedule link problem”)."
        return text

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
        for booking in queryset:
            result = resync(booking)
            if result is None:
                self.message_user(request, f"{booking}: no stored event to replay", messages.WARNING)
            else:
                level = messages.WARNING if result.outcome in ("failed", "skipped") else messages.SUCCESS
                self.message_user(request, f"{booking}: {result}", level)
