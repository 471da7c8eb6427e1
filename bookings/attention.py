"""What needs a person, counted for the admin index's banner: bookings' own two kinds of trouble.

Other apps add theirs (crm: the review queue) with `bookings.admin_extensions.register_attention_count`.
"""

from __future__ import annotations

from django.urls import reverse

from bookings.admin_extensions import register_attention_count
from bookings.health import SyncHealth, bookings_needing_a_person
from bookings.models import WebhookEvent


def failed_events_count(user) -> int:
    if not user.has_perm("bookings.view_webhookevent"):
        return 0
    return WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED, next_attempt_at__isnull=True).count()


def failing_bookings_count(user) -> int:
    if not user.has_perm("bookings.view_booking"):
        return 0
    return bookings_needing_a_person().count()


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def register() -> None:
    register_attention_count(
        "failed_events",
        failed_events_count,
        lambda n: _plural(n, "event failed", "events failed") + " and will not be retried on its own",
        # The "failed" filter shows those still retrying too; the list's status column tells them apart.
        lambda: reverse("admin:bookings_webhookevent_changelist") + "?status__exact=failed",
        order=10,
    )
    register_attention_count(
        "failing_bookings",
        failing_bookings_count,
        lambda n: _plural(n, "booking is", "bookings are") + " not in sync with Kommo or Zoom",
        lambda: reverse("admin:bookings_booking_changelist") + f"?health={SyncHealth.NEEDS_ATTENTION.value}",
        order=20,
    )
