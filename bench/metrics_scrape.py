"""How long one /metrics scrape takes with many stored events, on SQLite.

    .venv/bin/python bench/metrics_scrape.py                 # 200k events, 20 scrapes
    .venv/bin/python bench/metrics_scrape.py --events 50000 --scrapes 5

Seeds a throwaway SQLite file (WAL, as in production) with finished events, one processing attempt
each, a booking per event, then times full GET /metrics requests through Django's test client (the
whole middleware stack, the collector, the exposition). A script, not a test: timings depend on the
machine. Goal: every scrape under 100 ms at 200k events.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOAL_MS = 100.0
KINDS = ("invitee.created", "invitee.canceled", "invitee_no_show.created", "routing_form_submission.created")


def seed(events: int, batch: int = 5000) -> None:
    from bookings.models import Booking, ProcessingAttempt, WebhookEvent
    from calsync.metrics import (
        ATTEMPTS,
        DELIVERIES,
        DURATION_BUCKET,
        DURATION_SUM,
        LATENCY_BUCKETS,
        RECEIVED,
        add_to_counter,
    )

    start = datetime(2025, 1, 1, tzinfo=UTC)
    status = WebhookEvent.Status
    for offset in range(0, events, batch):
        rows, bookings = [], []
        for i in range(offset, min(events, offset + batch)):
            at = start + timedelta(minutes=i)
            kind = KINDS[i % len(KINDS)]
            state = status.FAILED if i % 97 == 0 else status.IGNORED if kind.startswith("routing") else status.DONE
            uri = f"https://api.calendly.com/scheduled_events/E{i}/invitees/I{i}"
            bookings.append(
                Booking(
                    invitee_uri=uri,
                    event_uri=f"https://api.calendly.com/scheduled_events/E{i}",
                    start_at=at + timedelta(days=2),
                    end_at=at + timedelta(days=2, minutes=30),
                    invitee_name=f"Bench {i}",
                    invitee_email=f"bench{i}@example.com",
                    crm_status=Booking.CrmStatus.NEEDS_REVIEW if i % 500 == 0 else Booking.CrmStatus.MATCHED,
                )
            )
            rows.append(
                WebhookEvent(
                    kind=kind,
                    invitee_uri=uri,
                    event_uri=uri.rsplit("/invitees", 1)[0],
                    invitee_email=f"bench{i}@example.com",
                    raw_body=b'{"event": "%s"}' % kind.encode(),
                    payload={"event": kind},
                    dedupe_key=f"{kind}|{uri}",
                    status=state,
                    attempts=1,
                    received_at=at,
                    processed_at=at + timedelta(seconds=1),
                )
            )
        Booking.objects.bulk_create(bookings)
        created = WebhookEvent.objects.bulk_create(rows)
        attempts, counts = [], {}
        for i, event in enumerate(created):
            took = 0.2 + (offset + i) % 40 / 10
            outcome = {"done": "done", "ignored": "ignored"}.get(event.status, "failed")
            attempts.append(
                ProcessingAttempt(
                    event=event,
                    number=1,
                    started_at=event.received_at,
                    finished_at=event.received_at + timedelta(seconds=took),
                    outcome=outcome,
                )
            )
            # What the webhook and the pipeline count as it happens, added up per batch.
            for name, labels, amount in (
                (RECEIVED, (("kind", event.kind), ("source", event.source)), 1),
                (DELIVERIES, (("kind", event.kind),), 1),
                (ATTEMPTS, (("kind", event.kind), ("outcome", outcome)), 1),
                (DURATION_BUCKET, (("le", next((str(b) for b in LATENCY_BUCKETS if took <= b), "+Inf")),), 1),
                (DURATION_SUM, (), took),
            ):
                counts[(name, labels)] = counts.get((name, labels), 0) + amount
        ProcessingAttempt.objects.bulk_create(attempts)
        for (name, labels), amount in counts.items():
            add_to_counter(name, dict(labels), amount)
        print(f"  seeded {min(events, offset + batch)} / {events}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a new temporary one)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="calsync-metrics-bench-")
    db = args.db or Path(workdir) / "bench.sqlite3"
    fresh = not db.exists()
    os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    os.environ["CALSYNC_READ_DOTENV"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ["CALSYNC_METRICS_TOKEN"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calsync.settings")
    import django

    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collected static files
    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from bookings.models import WebhookEvent

    if fresh:
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        t0 = time.perf_counter()
        seed(args.events)
        print(f"seeded {args.events} events in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    stored = WebhookEvent.objects.count()

    client = Client()
    times = []
    for _ in range(args.scrapes):
        t0 = time.perf_counter()
        response = client.get("/metrics", HTTP_HOST="127.0.0.1")
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.content[:300]
    worst = max(times)
    print(f"events stored: {stored}  (SQLite: {db})")
    print(
        f"GET /metrics over {len(times)} scrapes: median {statistics.median(times):.1f} ms, "
        f"max {worst:.1f} ms (goal: under {GOAL_MS:.0f} ms) → {'met' if worst < GOAL_MS else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
