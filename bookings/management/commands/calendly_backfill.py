"""manage.py calendly_backfill --since … --until … [--dry-run] — backfill and heal missed webhooks."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bookings.backfill import backfill_window
from bookings.calendly import parse_timestamp
from bookings.calendly_api import CalendlyClient, CalendlyError
from bookings.calendly_json import PayloadError


def moment(value: str) -> datetime:
    """An ISO date or datetime (UTC when no zone is given), or `now`, `now+30d`, `now-12h`."""
    value = value.strip()
    if value.startswith("now"):
        rest = value[3:]
        if not rest:
            return timezone.now()
        units = {"d": "days", "h": "hours", "m": "minutes"}
        try:
            amount, unit = float(rest[:-1]), units[rest[-1]]
        except (ValueError, KeyError):
            raise ValueError(f"not a relative time: {value!r} (e.g. now-2d, now+60d)") from None
        return timezone.now() + timedelta(**{unit: amount})
    if len(value) == 10:
        value += "T00:00:00"
    if not value.endswith("Z") and "+" not in value[10:] and "-" not in value[10:]:
        value += "+00:00"
    try:
        return parse_timestamp(value, "time")
    except PayloadError as exc:
        raise ValueError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Compare Calendly's scheduled events (starting in the window) with calsync's bookings and feed every "
        "missed booking or cancellation through the normal pipeline. First rollout: --since now --until now+90d."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="window start (event start time): 2026-12-01, now-1d")
        parser.add_argument("--until", required=True, help="window end: 2027-03-01, now+90d")
        parser.add_argument("--dry-run", action="store_true", help="report what is missing; store nothing")

    def handle(self, *args, **options) -> None:
        try:
            since, until = moment(options["since"]), moment(options["until"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if until <= since:
            raise CommandError("--until must be after --since")
        try:
            report = backfill_window(CalendlyClient.from_settings(), since, until, dry_run=options["dry_run"])
        except CalendlyError as exc:
            raise CommandError(str(exc)) from None
        verb = "would store" if report.dry_run else "stored"
        for kind, uri, event_id in report.stored:
            self.stdout.write(f"{verb} {kind} {uri}" + (f" as event #{event_id}" if event_id else ""))
        for kind, uri, event_id in report.already_stored:
            self.stdout.write(f"already in the pipeline: {kind} {uri} (event #{event_id})")
        for booking_id in report.links_refreshed:
            prefix = "would refresh" if report.dry_run else "refreshed"
            self.stdout.write(f"{prefix} the conference link of booking #{booking_id}")
        self.stdout.write(self.style.SUCCESS(report.summary()))
