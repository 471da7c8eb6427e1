"""`manage.py sweep_events`: run the retry sweeper now (or in a loop), outside the every-minute schedule.

Useful from cron on a deployment without a scheduler, after an outage, and in end-to-end tests that
cannot wait a minute between sweeps.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser

from bookings.processing import sweep
from bookings.queue import enqueue_processing


class Command(BaseCommand):
    help = "Re-enqueue events that were lost, are stuck past their lease, or are due for a retry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--every", type=float, default=0, help="repeat every N seconds (default: run once)")
        parser.add_argument("--for", dest="duration", type=float, default=0, help="stop looping after N seconds")

    def handle(self, *args, every: float, duration: float, **options) -> None:
        deadline = time.monotonic() + duration if duration else None
        while True:
            result = sweep(enqueue_processing)
            if result.requeued or result.lost_workers or not every:
                self.stdout.write(f"requeued {len(result.requeued)}, lost workers {len(result.lost_workers)}")
            if not every or (deadline and time.monotonic() >= deadline):
                return
            time.sleep(every)
