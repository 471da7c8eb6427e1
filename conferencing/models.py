"""The Zoom meetings calsync made, one row per meeting (never per attempt)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ZoomMeeting(models.Model):
    """A Zoom meeting calsync owns, serving one Calendly scheduled event.

    For a one-to-one event type that is one booking; for a group event it is shared by every invitee
    of the scheduled event (`event_uri`). `booking` is the booking that currently owns the meeting: on a
    reschedule the row (and the meeting: same id, same join link) moves to the new booking and event.

    `creating` is saved *before* the POST: Zoom has no idempotency key, so a row still `creating` on
    the next attempt means the outcome is unknown and the host's upcoming meetings are searched for
    `marker` before anything is created again.
    """

    class Status(models.TextChoices):
        CREATING = "creating", "Being created (outcome not yet known)"
        LIVE = "live", "Live"
        DELETED = "deleted", "Deleted"

    booking = models.ForeignKey(
        "bookings.Booking", null=True, blank=True, on_delete=models.SET_NULL, related_name="zoom_meetings"
    )
    event_uri = models.CharField(max_length=500, db_index=True, help_text="The Calendly scheduled event it serves.")
    # Zoom meeting ids have 11 digits and more: a 64-bit integer.
    meeting_id = models.BigIntegerField(null=True, blank=True, unique=True)
    uuid = models.CharField(max_length=100, blank=True)
    join_url = models.URLField(max_length=1000, blank=True)
    # Logs anyone in as the host and expires after 2 hours: kept only because the issue asks to record
    # it; never shown in the admin, logged, or passed to the CRM (`editable=False` keeps it off forms).
    start_url = models.TextField(blank=True, editable=False)
    host_user = models.CharField(max_length=320, help_text="The Zoom user (id or email) that hosts it.")
    host_id = models.CharField(max_length=64, blank=True)
    topic = models.CharField(max_length=200, blank=True)
    start_at = models.DateTimeField(null=True, blank=True)
    duration = models.PositiveIntegerField(null=True, blank=True, help_text="Minutes.")
    timezone = models.CharField(max_length=64, blank=True)
    marker = models.CharField(max_length=100, help_text="First line of the agenda; finds it after a lost response.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One meeting per scheduled event: a second worker's insert fails instead of a duplicate.
            models.UniqueConstraint(
                fields=["event_uri"], condition=~Q(status="deleted"), name="one_open_zoom_meeting_per_event"
            )
        ]

    def __str__(self) -> str:
        return f"Zoom {self.meeting_id or '(creating)'} {self.topic}"

    def __repr__(self) -> str:  # the default repr would be harmless, but be explicit: no start_url
        return f"<ZoomMeeting {self.pk} {self.meeting_id} {self.status}>"
