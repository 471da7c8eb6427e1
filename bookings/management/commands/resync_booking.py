"""`manage.py resync_booking`: sync one booking again with Kommo and Zoom."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bookings.models import Booking
from bookings.verification import resync


class Command(BaseCommand):
    help = "Sync one booking again (replays its newest event). Give its id or its Calendly invitee URI."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("booking", help="booking id or Calendly invitee URI")
        parser.add_argument("--queue", action="store_true", help="hand it to the worker instead of running now")

    def handle(self, *args, booking: str, queue: bool, **options) -> None:
        found = Booking.objects.filter(pk=int(booking)).first() if booking.isdigit() else None
        found = found or Booking.objects.filter(invitee_uri=booking).first()
        if found is None:
            raise CommandError(f"no booking with id or invitee URI {booking!r}")
        result = resync(found, inline=not queue)
        if result is None:
            raise CommandError(f"booking #{found.pk} has no stored event to replay")
        self.stdout.write(f"booking #{found.pk} ({found}): {result}")
        if result.outcome in ("failed", "skipped"):
            raise CommandError(result.detail)
