"""Admin for webhook events and bookings, written for sales ops rather than engineers.

Every detail page answers "what happened to this meeting, and what do I do now" in words first; the raw
payload and error texts are folded away at the bottom, read-only.
"""

from bookings.admin.booking_admin import BookingAdmin, booking_timeline
from bookings.admin.events import WebhookEventAdmin, event_explanation

__all__ = ["BookingAdmin", "WebhookEventAdmin", "booking_timeline", "event_explanation"]
