"""manage.py calendly_retention [--dry-run] [--days N] [--delete-days N] — redact, then delete, old events."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from bookings.retention import delete_old_events, redact_old_events


class Command(BaseCommand):
    help = (
        "Empty raw bodies and personal data of done/ignored events older than CALSYNC_RETENTION_DAYS, "
        "and delete those older than CALSYNC_EVENT_DELETE_DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count only")
        parser.add_argument("--days", type=int, help="redact after; default: CALSYNC_RETENTION_DAYS")
        parser.add_argument("--delete-days", type=int, help="delete after; default: CALSYNC_EVENT_DELETE_DAYS")

    def handle(self, *args, **options) -> None:
        self.stdout.write(str(redact_old_events(days=options["days"], dry_run=options["dry_run"])))
        self.stdout.write(str(delete_old_events(days=options["delete_days"], dry_run=options["dry_run"])))
