"""`manage.py replay_event`: process stored Calendly events again (the admin's "Replay selected")."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from bookings.models import WebhookEvent
from bookings.processing import replay


def parse_when(value: str) -> datetime:
    """An ISO date or datetime; naive values are in the configured time zone."""
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"not an ISO date or datetime: {value!r} (e.g. 2026-11-20 or 2026-11-20T09:00)")
        parsed = datetime(day.year, day.month, day.day)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


class Command(BaseCommand):
    help = "Replay stored Calendly webhook events: by id, or every failed one, optionally within a time window."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="event ids (see the admin's Webhook events)")
        parser.add_argument("--failed", action="store_true", help="every failed event (with --since/--until/--kind)")
        parser.add_argument("--since", type=parse_when, help="received at or after (ISO date/datetime)")
        parser.add_argument("--until", type=parse_when, help="received before (ISO date/datetime)")
        parser.add_argument("--kind", help="only this kind, e.g. invitee.canceled")
        parser.add_argument("--dry-run", action="store_true", help="list what would be replayed; change nothing")
        parser.add_argument("--inline", action="store_true", help="process now in this process, not via the queue")

    def handle(self, *args, ids: list[int], failed: bool, since, until, kind, dry_run, inline, **options) -> None:
        if not ids and not failed:
            raise CommandError("name event ids, or use --failed (see --help)")
        events = WebhookEvent.objects.all().order_by("received_at", "pk")
        if ids:
            events = events.filter(pk__in=ids)
            missing = sorted(set(ids) - set(events.values_list("pk", flat=True)))
            if missing:
                raise CommandError(f"no such event: {', '.join(map(str, missing))}")
        if failed:
            events = events.filter(status=WebhookEvent.Status.FAILED)
        if since:
            events = events.filter(received_at__gte=since)
        if until:
            events = events.filter(received_at__lt=until)
        if kind:
            events = events.filter(kind=kind)

        counts: dict[str, int] = {}
        for event in events:
            if dry_run:
                self.stdout.write(
                    f"event #{event.pk}: would replay ({event.kind}, {event.status}, {event.invitee_uri})"
                )
                counts["would replay"] = counts.get("would replay", 0) + 1
                continue
            result = replay(event, inline=inline)
            self.stdout.write(str(result))
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing to replay"
        self.stdout.write(f"summary: {summary}")
        if counts.get("failed") or counts.get("skipped"):
            raise CommandError(f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped")
