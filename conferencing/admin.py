"""Read-only admin for Zoom meetings. start_url (host login) is never shown."""

from __future__ import annotations

from django.contrib import admin

from bookings.models import Booking
from calsync.admin_mixins import ReadOnlyAdminMixin, web_link
from conferencing.models import ZoomMeeting


def booking_zoom_meeting(booking: Booking) -> str:
    """The booking admin's "Zoom meeting" column (registered in ConferencingConfig.ready)."""
    meeting = ZoomMeeting.objects.filter(booking=booking).exclude(status=ZoomMeeting.Status.DELETED).first()
    if meeting and meeting.join_url:
        return web_link(meeting.join_url, str(meeting.meeting_id))
    if booking.calendly_owns_conference and booking.conference_join_url:
        return web_link(booking.conference_join_url, "Calendly’s link")
    return "—"


@admin.register(ZoomMeeting)
class ZoomMeetingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("meeting_id", "topic", "start_at", "duration", "host_user", "status", "booking")
    list_filter = ("status",)
    search_fields = ("=meeting_id", "topic", "host_user", "event_uri", "booking__invitee_email")
    date_hierarchy = "start_at"
    # An explicit list, so a new secret-bearing field never appears by accident.
    fields = (
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
