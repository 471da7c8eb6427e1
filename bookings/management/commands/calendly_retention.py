"""manage.py calendly_retention [--dry-run] [--days N] — redact finished events past retention."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from bookings.retention import redact_old_events


class Command(BaseCommand):
    help = "Empty raw bodies and personal data of done/ignored events older than CALSYNC_RETENTION_DAYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count only")
        parser.add_argument("--days", type=int, help="default: CALSYNC_RETENTION_DAYS")

    def handle(self, *args, **options) -> None:
        self.stdout.write(str(redact_old_events(days=options["days"], dry_run=options["dry_run"])))
