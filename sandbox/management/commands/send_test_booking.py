"""``manage.py send_test_booking``: post signed sample Calendly deliveries to this calsync's own webhook.

manage.py send_test_booking                          # one booking by the demo invitee
manage.py send_test_booking --reschedule             # move the booking sent before one day later
manage.py send_test_booking --cancel                 # cancel the booking sent before
manage.py send_test_booking --as several-deals       # a contact with two open deals (the review queue)
manage.py send_test_booking --as unknown             # nobody in the CRM (an incoming lead)
manage.py send_test_booking --count 3 --duplicate --shuffle --email someone@example.com

It remembers the bookings it sent last (var/test_bookings.json); ``--reschedule`` and ``--cancel`` act on
them, or first make new ones when there are none (or with ``--new``). Like Calendly, it sends a move or a
cancellation only once calsync has processed the step before; a reschedule's two halves come together.

It refuses when this calsync is configured for a real Kommo or Zoom account, or the webhook URL is not
on this machine (sandbox/targets.py): the bookings would become real leads and meetings. `--really`
sends anyway.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox import booking_memory as memory
from sandbox import calendly_sender as cs
from sandbox import demo
from sandbox.targets import real_targets

MEMORY_FILE = Path(settings.BASE_DIR) / "var" / "test_bookings.json"

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
        parser.add_argument(
            "--as",
            dest="invitee",
            choices=sorted(demo.INVITEES),
            default="demo",
            help="who books: the demo contact (one open deal), several-deals (two open deals: the review queue) "
            "or unknown (not in the CRM: an incoming lead)",
        )
        parser.add_argument("--email", help="invitee e-mail (default: the one of --as)")
        parser.add_argument("--name", help="invitee name (default: the one of --as)")
        parser.add_argument("--count", type=int, default=1, help="how many separate bookings (default 1)")
        parser.add_argument("--cancel", action="store_true", help="cancel the booking(s) sent before (host cancels)")
        parser.add_argument("--reschedule", action="store_true", help="move the booking(s) sent before a day later")
        parser.add_argument("--new", action="store_true", help="make new bookings first even if some were sent before")
        parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for calsync between steps")
        parser.add_argument("--memory-file", type=Path, help="where the bookings sent last are kept")
        parser.add_argument("--location", choices=LOCATION_TYPES, default="custom", help="location type")
        parser.add_argument("--start", help="start time, ISO 8601 (default: tomorrow 15:00 UTC)")
        parser.add_argument("--duration", type=int, default=30, help="minutes (default 30)")
        parser.add_argument("--host-email", default=cs.DEMO_HOST_EMAIL, help="the Calendly host's e-mail")
        parser.add_argument("--host-name", help="the host's name (default: Marta Ruiz, or made from --host-email)")
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
        start = datetime.fromisoformat(options["start"]) if options["start"] else None
        if start is not None and start.tzinfo is None:
            raise CommandError("--start needs a time zone, e.g. 2026-12-02T15:00:00Z")
        memory_file = options["memory_file"] or MEMORY_FILE
        self.sender = cs.CalendlySender(options["url"], key)
        self.options, self.failures, self.sent = options, 0, 0
        self._sent_ids: list[int] | None = None  # calsync's ids of the step sent last
        bookings = [] if options["new"] else memory.remembered(memory_file)
        if bookings and (options["reschedule"] or options["cancel"]):
            self.stdout.write(f"Acting on the {len(bookings)} booking(s) sent before (remembered in {memory_file})")
        else:
            now = datetime.now(UTC)
            bookings = [self._booking(rng, now, start and start + timedelta(hours=i)) for i in range(options["count"])]
            self._send_step("New booking(s)", [[cs.created(b, at=now)] for b in bookings], rng)
        memory.remember(memory_file, bookings)
        if options["reschedule"]:
            now = datetime.now(UTC)
            moves = [cs.reschedule(b, b.start + timedelta(days=1), at=now, rng=rng) for b in bookings]
            # The two halves come together (the old invitee cancelled, the new one created).
            self._send_step("Moved one day later", [[old_half, new_half] for _, old_half, new_half in moves], rng)
            bookings = [new for new, _, _ in moves]
            memory.remember(memory_file, bookings)
        if options["cancel"]:
            now = datetime.now(UTC)
            reason = "Sent by send_test_booking --cancel"
            self._send_step("Cancelled", [[cs.canceled(b, at=now, reason=reason)] for b in bookings], rng)
            memory.remember(memory_file, [])
        self.stdout.write(
            "All accepted. Watch them in the admin: /admin/bookings/webhookevent/ and /admin/bookings/booking/"
        )

    def _send_step(self, title: str, sequences: list[list[dict]], rng: random.Random) -> None:
        """One step (e.g. the moves of every booking), sent once calsync processed the step before."""
        options = self.options
        if self._sent_ids is not None:
            self._wait_for_calsync()
        deliveries = cs.plan(
            sequences, rng=rng, duplicate_rate=1.0 if options["duplicate"] else 0.0, shuffle_within=options["shuffle"]
        )
        self.stdout.write(f"{title}: sending {len(deliveries)} signed deliveries to {options['url']}")
        self._sent_ids = []
        results = self.sender.send_all(deliveries, delay_s=options["delay"])
        for result, delivery in zip(results, deliveries, strict=True):
            event = delivery["payload"]["scheduled_event"]
            line = (
                f"  {result.kind:<17} {delivery['payload']['email']}  {event['start_time'][:16]}Z  "
                f"…{result.invitee_uri[-12:]}  → {result.status or 'no answer'} {result.answer.strip()[:200]}"
            )
            self.stdout.write(self.style.SUCCESS(line) if result.ok else self.style.ERROR(line))
            self.failures += not result.ok
            self.sent += 1
            event_id = memory.answered_event_id(result.answer) if result.ok else None
            if event_id is not None:
                self._sent_ids.append(event_id)
        if self.failures:  # nothing more about bookings calsync did not take, and nothing remembered
            raise CommandError(f"{self.failures} of {self.sent} deliveries were not accepted (see the answers above)")

    def _wait_for_calsync(self) -> None:
        processed = memory.wait_until_processed(self._sent_ids, timeout=self.options["wait"])
        if processed is None:  # another calsync's database: give its worker a moment, as Calendly would
            time.sleep(2.0)
        elif not processed:
            self.stdout.write(self.style.WARNING(f"  calsync has not processed them after {self.options['wait']} s"))

    def _booking(self, rng: random.Random, now: datetime, start: datetime | None) -> cs.Booking:
        options = self.options
        email, name = demo.INVITEES[options["invitee"]]
        host_email = options["host_email"]
        location_type = None if options["location"] == "none" else options["location"]
        return cs.booking(
            email=options["email"] or email,
            name=options["name"] or name,
            start=start,
            rng=rng,
            now=now,
            duration_minutes=options["duration"],
            host_email=host_email,
            host_name=options["host_name"] or cs.host_name_for(host_email),
            location_type=location_type,
        )
