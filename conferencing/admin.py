"""Read-only admin for Zoom meetings. start_url (host login) is never shown."""

from __future__ import annotations

from django.contrib import admin

from calsync.admin_mixins import ReadOnlyAdminMixin
from conferencing.models import ZoomMeeting


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
