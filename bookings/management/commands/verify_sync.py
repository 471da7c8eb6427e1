"""`manage.py verify_sync`: check live bookings against what is in Kommo and Zoom now, and repair."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from bookings.verification import live_bookings, verify


class Command(BaseCommand):
    help = (
        "Check every live booking starting within the next N days against Kommo and Zoom: re-create a task "
        "or meeting deleted by hand, leave a completed task alone, raise a moved one for a person."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="how many days ahead (default CALSYNC_VERIFY_DAYS)")
        parser.add_argument("--dry-run", action="store_true", help="only report what drifted; change nothing")

    def handle(self, *args, days: int | None, dry_run: bool, **options) -> None:
        bookings = live_bookings(settings.CALSYNC_VERIFY_DAYS if days is None else days)
        report = verify(bookings, dry_run=dry_run)
        for finding in report.findings:
            self.stdout.write(f"  {finding.line()}")
        self.stdout.write(report.summary())
