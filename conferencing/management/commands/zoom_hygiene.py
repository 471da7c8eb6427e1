"""`manage.py zoom_hygiene [--dry-run] [--scan-zoom [--delete-orphans]]`: see conferencing.hygiene."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from conferencing import hygiene
from conferencing.sync import zoom_configured


class Command(BaseCommand):
    help = (
        "Delete Zoom meetings calsync made that no live booking needs (cancelled or gone bookings). "
        "--scan-zoom also lists meetings in Zoom with calsync's marker and no record (lost creates); "
        "they are deleted only with --delete-orphans, after a human checked the list."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only report; delete nothing")
        parser.add_argument("--scan-zoom", action="store_true", help="list calsync-marked meetings with no record")
        parser.add_argument(
            "--delete-orphans", action="store_true", help="delete the meetings --scan-zoom lists (implies it)"
        )

    def handle(self, *args, dry_run: bool, scan_zoom: bool, delete_orphans: bool, **options):
        if not zoom_configured():
            raise CommandError("Zoom is not configured: set ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET.")
        report = hygiene.run(dry_run=dry_run)
        if scan_zoom or delete_orphans:
            report.orphans = hygiene.scan_orphans(delete=delete_orphans and not dry_run)
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(report.summary())
        if report.orphans and not (delete_orphans and not dry_run):
            self.stdout.write("Check the orphans in Zoom, then run again with --scan-zoom --delete-orphans.")
        if report.failed or any(o.outcome.startswith("failed") for o in report.orphans or []):
            raise CommandError("some deletions failed; see above (the next run tries again)")
