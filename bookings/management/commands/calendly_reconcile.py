"""manage.py calendly_reconcile: the old name of `calendly_backfill`, kept for scripts and habits."""

from bookings.management.commands.calendly_backfill import Command as BackfillCommand


class Command(BackfillCommand):
    help = "Old name of calendly_backfill (same arguments). " + BackfillCommand.help
