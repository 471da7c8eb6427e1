"""Read-only admin for Zoom meetings. start_url (host login) is never shown."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from bookings.models import Booking
from calsync.admin_mixins import ReadOnlyAdminMixin, web_link
from conferencing.models import ZoomMeeting


def booking_zoom_meeting(booking: Booking) -> str:
    """The booking admin's "Zoom meeting" column (registered in ConferencingConfig.ready)."""
    meeting = ZoomMeeting.objects.filter(booking=booking).exclude(status=ZoomMeeting.Status.DELETED).first()
    if not booking.is_live:
        # A cancelled or moved booking's link must not be clicked: its meeting is (being) deleted or moved on.
        return f"meeting {meeting.meeting_id}: calsync deletes it" if meeting and meeting.meeting_id else "—"
    if meeting and meeting.join_url:
        return web_link(meeting.join_url, str(meeting.meeting_id))
    if booking.calendly_owns_conference and booking.conference_join_url:
        return web_link(booking.conference_join_url, "Calendly’s link")
    return "—"


def meeting_host(meeting: ZoomMeeting) -> str:
    """The host as people know them: an e-mail, never Zoom's opaque user id."""
    if "@" in meeting.host_user:
        return meeting.host_user
    if meeting.booking_id and meeting.booking.host_email:
        return meeting.booking.host_email
    return f"Zoom user {meeting.host_user}" if meeting.host_user else "—"


def what_happens_next(meeting: ZoomMeeting) -> str:
    if meeting.status == ZoomMeeting.Status.CREATING:
        return (
            "Zoom's answer was lost. On the booking's next sync (automatic, or “Sync again”) calsync looks for "
            "the meeting among the host's meetings and adopts it, or creates it if it is not there: never twice."
        )
    if meeting.status == ZoomMeeting.Status.DELETED:
        return "Deleted in Zoom; its join link no longer works."
    return ""


@admin.register(ZoomMeeting)
class ZoomMeetingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("coloured_status", "meeting_id", "topic", "start_at", "duration", "host", "booking")
    list_select_related = ("booking",)
    list_filter = ("status",)
    search_fields = ("=meeting_id", "topic", "host_user", "event_uri", "booking__invitee_email")
    date_hierarchy = "start_at"
    # An explicit list, so a new secret-bearing field never appears by accident.
    fields = (
        "what_next",
        "meeting_id",
        "uuid",
        "status",
        "booking",
        "event_uri",
        "topic",
        "start_at",
        "duration",
        "timezone",
        "host_user",
        "host_id",
        "join_url",
        "marker",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    readonly_fields = fields

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: ZoomMeeting) -> str:
        return format_html("{}<br><small>{}</small>", obj.get_status_display(), what_happens_next(obj))

    @admin.display(description="host", ordering="host_user")
    def host(self, obj: ZoomMeeting) -> str:
        return meeting_host(obj)

    @admin.display(description="what happens next")
    def what_next(self, obj: ZoomMeeting) -> str:
        return what_happens_next(obj) or "Nothing: Zoom has it as calsync recorded it."
