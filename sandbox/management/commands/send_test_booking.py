"""``manage.py send_test_booking``: post signed sample Calendly deliveries to this calsync's own webhook.

manage.py send_test_booking                          # one booking by the demo invitee
manage.py send_test_booking --reschedule --cancel    # …then moved a day later, then cancelled
manage.py send_test_booking --count 3 --duplicate --shuffle --email someone@example.com

It refuses when this calsync is configured for a real Kommo or Zoom account, or the webhook URL is not
on this machine (sandbox/targets.py): the bookings would become real leads and meetings. `--really`
sends anyway.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox import calendly_sender as cs
from sandbox.demo import DEMO_INVITEE_EMAIL, DEMO_INVITEE_NAME
from sandbox.targets import real_targets

LOCATION_TYPES = [
    "custom",
    "physical",
    "zoom",
    "zoom_conference",
    "google_conference",
    "microsoft_teams_conference",
    "webex_conference",
    "gotomeeting",
    "outbound_call",
    "inbound_call",
    "ask_invitee",
    "none",
]


class Command(BaseCommand):
    help = "Send signed sample Calendly bookings to calsync's webhook (the sandbox's way to see a sync happen)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/calendly/", help="webhook URL")
        parser.add_argument("--email", default=DEMO_INVITEE_EMAIL, help="invitee e-mail (default: the demo contact)")
        parser.add_argument("--name", default=DEMO_INVITEE_NAME, help="invitee name")
        parser.add_argument("--count", type=int, default=1, help="how many separate bookings (default 1)")
        parser.add_argument("--cancel", action="store_true", help="then cancel each booking (host cancels)")
        parser.add_argument("--reschedule", action="store_true", help="then move each booking one day later")
        parser.add_argument("--location", choices=LOCATION_TYPES, default="custom", help="location type")
        parser.add_argument("--start", help="start time, ISO 8601 (default: tomorrow 15:00 UTC)")
        parser.add_argument("--duration", type=int, default=30, help="minutes (default 30)")
        parser.add_argument("--host-email", default=cs.DEMO_HOST_EMAIL, help="the Calendly host's e-mail")
        parser.add_argument("--duplicate", action="store_true", help="send every delivery twice, as a redelivery")
        parser.add_argument("--shuffle", action="store_true", help="shuffle each booking's deliveries")
        parser.add_argument("--delay", type=float, default=0.0, help="seconds between deliveries")
        parser.add_argument("--seed", type=int, help="RNG seed for URIs and order (reproducible runs)")
        parser.add_argument("--key", help="signing key (default: the first CALENDLY_SIGNING_KEY)")
        parser.add_argument(
            "--really",
            action="store_true",
            help="send even though Kommo, Zoom or the webhook are not the local emulators (real data!)",
        )

    def handle(self, *args, **options) -> None:
        key = options["key"] or next(iter(settings.CALENDLY_SIGNING_KEYS), "")
        if not key:
            raise CommandError("no signing key: set CALENDLY_SIGNING_KEY (scripts/run.sh writes one to .env) or --key")
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        real = real_targets(options["url"])
        if real and not options["really"]:
            raise CommandError(
                "refusing to send test bookings: this calsync would act on real accounts ("
                + "; ".join(real)
                + "). Point it at the sandbox emulators (manage.py run_emulators), or add --really."
            )
        rng = random.Random(options["seed"])  # noqa: S311 - sample traffic
        now = datetime.now(UTC)
        start = datetime.fromisoformat(options["start"]) if options["start"] else None
        if start is not None and start.tzinfo is None:
            raise CommandError("--start needs a time zone, e.g. 2026-12-02T15:00:00Z")
        sequences = []
        for index in range(options["count"]):
            sequences.append(self._sequence(options, rng, now, start and start + timedelta(hours=index)))
        deliveries = cs.plan(
            sequences, rng=rng, duplicate_rate=1.0 if options["duplicate"] else 0.0, shuffle_within=options["shuffle"]
        )
        sender = cs.CalendlySender(options["url"], key)
        self.stdout.write(f"Sending {len(deliveries)} signed deliveries to {options['url']}")
        failures = 0
        for result, delivery in zip(sender.send_all(deliveries, delay_s=options["delay"]), deliveries, strict=True):
            event = delivery["payload"]["scheduled_event"]
            line = (
                f"  {result.kind:<17} {delivery['payload']['email']}  {event['start_time'][:16]}Z  "
                f"…{result.invitee_uri[-12:]}  → {result.status or 'no answer'} {result.answer.strip()[:200]}"
            )
            self.stdout.write(self.style.SUCCESS(line) if result.ok else self.style.ERROR(line))
            failures += not result.ok
        if failures:
            raise CommandError(f"{failures} of {len(deliveries)} deliveries were not accepted (see the answers above)")
        self.stdout.write(
            "All accepted. Watch them in the admin: /admin/bookings/webhookevent/ and /admin/bookings/booking/"
        )

    def _sequence(self, options: dict, rng: random.Random, now: datetime, start: datetime | None) -> list[dict]:
        location_type = None if options["location"] == "none" else options["location"]
        current = cs.booking(
            email=options["email"],
            name=options["name"],
            start=start,
            rng=rng,
            now=now,
            duration_minutes=options["duration"],
            host_email=options["host_email"],
            location_type=location_type,
        )
        deliveries = [cs.created(current, at=now)]
        if options["reschedule"]:
            current, old_half, new_half = cs.reschedule(current, current.start + timedelta(days=1), at=now, rng=rng)
            deliveries += [old_half, new_half]
        if options["cancel"]:
            deliveries.append(cs.canceled(current, at=now, reason="Sent by send_test_booking --cancel"))
        return deliveries
