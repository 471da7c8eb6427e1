"""Where the time goes: cProfile of the webhook acknowledgement and of one booking's processing attempt.

    .venv/bin/python bench/profile_paths.py [--acks 400] [--bookings 20] [--top 25]

In one process, on a throwaway SQLite file (set DATABASE_URL=postgres://… for PostgreSQL): the Kommo and
Zoom emulators run as child processes (as in bench/run.py), the acknowledgement goes through Django's test
client (every middleware and the view, no gunicorn), the attempt through `process_event` with the real
reconcilers. A script, not a test: it prints profiles for a human to read.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acks", type=int, default=400)
    parser.add_argument("--bookings", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="calsync-profile-"))

    from tests.e2e.harness import SIGNING_KEY
    from tests.e2e.services import Emulators
    from tests.e2e.world import crm_seed, people, zoom_accounts

    persons = people(args.bookings + 1, prefix="prof")
    emulators = Emulators(work, kommo_seed=crm_seed(persons), zoom_seed=zoom_accounts()).start()
    try:
        os.environ.update(
            {
                **emulators.env(),
                "DJANGO_SETTINGS_MODULE": "calsync.settings",
                "CALSYNC_READ_DOTENV": "false",
                "DEBUG": "false",
                "SECRET_KEY": "profile-" + "s" * 60,
                "ALLOWED_HOSTS": "testserver",
                "SECURE_SSL_REDIRECT": "false",
                "CALENDLY_SIGNING_KEY": SIGNING_KEY,
                "CALSYNC_LOG_LEVEL": "WARNING",
            }
        )
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'calsync.sqlite3'}")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        call_command("createcachetable", verbosity=0)
        profile_acks(args.acks, args.top)
        profile_attempts(persons, args.top)
    finally:
        emulators.stop()


def show(profile: cProfile.Profile, top: int, sort: str = "cumulative") -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    print(out.getvalue())


def profile_acks(count: int, top: int) -> None:
    from django.test import Client

    from bookings.signature import signature_header
    from sandbox import calendly_sender as cs
    from tests.e2e.harness import SIGNING_KEY

    client = Client()
    now = datetime.now(UTC)
    bodies = [
        cs.encode(cs.created(cs.booking(email=f"ack{n}@load.example", name=f"Ack {n}", now=now)))
        for n in range(count + 50)
    ]

    def post(body: bytes) -> None:
        header = signature_header(body, SIGNING_KEY, int(time.time()))
        response = client.post(
            "/webhooks/calendly/", data=body, content_type="application/json", HTTP_CALENDLY_WEBHOOK_SIGNATURE=header
        )
        assert response.status_code == 202, response.status_code

    for body in bodies[:50]:  # warm-up: imports, connections, caches
        post(body)
    half = count // 2
    began, cpu = time.perf_counter(), time.process_time()
    for body in bodies[50 : 50 + half]:  # unprofiled: the real cost
        post(body)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    print(
        f"== acknowledgement without the profiler: {wall / half * 1e3:.2f} ms wall, {cpu / half * 1e3:.2f} ms CPU each"
    )
    bodies = bodies[half:]
    count -= half
    profile = cProfile.Profile()
    began, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    for body in bodies[50:]:
        post(body)
    profile.disable()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    print(
        f"== acknowledgement: {count} profiled, {wall / count * 1e3:.2f} ms wall, {cpu / count * 1e3:.2f} ms CPU each"
    )
    show(profile, top)
    show(profile, top, "tottime")


def profile_attempts(persons, top: int) -> None:
    from bookings import processing
    from bookings.intake import store_delivery
    from bookings.models import WebhookEvent
    from sandbox import calendly_sender as cs

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    ids = []
    for n, person in enumerate(persons):
        b = cs.booking(email=person.email, name=person.name, start=start + timedelta(hours=n))
        ids.append(store_delivery(cs.encode(cs.created(b))).event.pk)
    processing.process_event(ids[0])  # cold: user list, Zoom token and host
    profile = cProfile.Profile()
    times = []
    for event_id in ids[1:]:
        time.sleep(1.1)  # idle: the last booking's requests have left Kommo's one-second window
        began = time.perf_counter()
        profile.enable()
        outcome = processing.process_event(event_id)
        profile.disable()
        times.append(time.perf_counter() - began)
        assert outcome == "done", WebhookEvent.objects.get(pk=event_id).last_error
    times.sort()
    print(f"== one booking's attempt: {len(times)} bookings, p50 {times[len(times) // 2] * 1000:.1f} ms")
    show(profile, top)
    show(profile, top, "tottime")


if __name__ == "__main__":
    main()
