"""What one verification run costs per 1,000 live bookings: requests to Kommo and Zoom, and seconds.

    source scripts/pg.sh && pg_start && .venv/bin/python bench/verify_cost.py [--bookings 1000] [--hosts 10]; pg_stop

Real processes on loopback, as in tests/e2e: PostgreSQL, calsync's `manage.py verify_sync`, and the Kommo
and Zoom emulators with their real rate limits (Kommo 7/s; Zoom 30 light / 20 medium per second). Every
booking has a live Meeting task in Kommo and a Zoom meeting (hosts share them evenly). Figures:
1. steady state: nothing drifted (the usual run);
2. with drift: 1% of the tasks and 1% of the meetings deleted by hand, then repaired.
The seconds are the command's wall time minus the same command over zero bookings (Django start-up).
A script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from sandbox.demo import DEMO_OPEN_DEAL_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET, kommo_seed  # noqa: E402
from tests.e2e.conftest import Run  # noqa: E402
from tests.e2e.harness import postgres_server_url  # noqa: E402

SEED_DB = """
import json
from datetime import datetime, timedelta
from bookings.models import Booking
from conferencing.models import ZoomMeeting
from crm.models import KommoLink
rows = json.load(open({path!r}))
for r in rows:
    start = datetime.fromisoformat(r["start"])
    b = Booking.objects.create(
        invitee_uri=f"https://api.calendly.com/scheduled_events/E{{r['n']}}/invitees/I{{r['n']}}",
        event_uri=f"https://api.calendly.com/scheduled_events/E{{r['n']}}",
        event_type_name="30-min Product Demo", start_at=start, end_at=start + timedelta(minutes=30),
        invitee_name=f"Bench {{r['n']}}", invitee_email=f"bench{{r['n']}}@example.com",
        host_email=r["host_email"], conference_join_url=r["join_url"], crm_status="matched",
    )
    KommoLink.objects.create(
        booking=b, marker=f"m{{r['n']}}", lead_id={lead}, task_id=r["task_id"], match_method="single_open_deal",
        task_state={{"complete_till": int(start.timestamp()), "duration": 1800, "completed": False}},
        note_ids={{f"booked:x@{lead}": 1}}, join_url_noted=r["join_url"],
    )
    ZoomMeeting.objects.create(
        booking=b, event_uri=b.event_uri, meeting_id=r["meeting_id"], join_url=r["join_url"],
        host_user=r["host_user"], marker=f"calsync:I{{r['n']}}", start_at=start, duration=30, status="live",
    )
print(len(rows))
"""


def zoom_users(hosts: int) -> list[dict]:
    return [
        {"id": f"benchhost{i:03d}", "email": f"host{i}@bench.example", "first_name": f"Host{i}"} for i in range(hosts)
    ]


def make_world(run: Run, bookings: int, hosts: int, workdir: Path):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    starts = [now + timedelta(hours=2) + timedelta(minutes=15 * i) for i in range(bookings)]  # all within 14 days
    seed = kommo_seed()
    seed["tasks"] = [
        {"id": 7_000_000 + n, "entity_id": DEMO_OPEN_DEAL_ID, "entity_type": "leads", "task_type_id": 2,
         "text": f"Meeting {n}", "complete_till": int(s.timestamp()), "duration": 1800, "is_completed": False}
        for n, s in enumerate(starts)
    ]  # fmt: skip
    users = zoom_users(hosts)
    emulators = run.emulators(
        kommo_seed=seed,
        zoom_seed={"users": users},
        zoom_settings={"daily_limit": 10**9, "light_rps": 0, "medium_rps": 0},
    )
    zoom = emulators.urls["zoom"]
    token = requests.post(
        f"{zoom}/oauth/token",
        auth=(ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET),
        data={"grant_type": "account_credentials", "account_id": "sandbox-account"},
        timeout=10,
    ).json()["access_token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    rows = []
    for n, start in enumerate(starts):
        user = users[n % hosts]
        body = {"topic": f"Bench {n}", "type": 2, "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": 30,
                "agenda": f"calsync:I{n}"}  # fmt: skip
        meeting = api.post(f"{zoom}/v2/users/{user['id']}/meetings", json=body, timeout=10).json()
        rows.append(
            {"n": n, "start": start.isoformat(), "task_id": 7_000_000 + n, "meeting_id": meeting["id"],
             "join_url": meeting["join_url"], "host_user": user["id"], "host_email": user["email"]}
        )  # fmt: skip
    emulators.configure("zoom", light_rps=30, medium_rps=20)  # back to the real per-second limits
    stack = run.stack(workers=0, extra_env=emulators.env())
    data = workdir / "bookings.json"
    data.write_text(json.dumps(rows))
    stack.manage("shell", "-c", SEED_DB.format(path=str(data), lead=DEMO_OPEN_DEAL_ID), timeout=600)
    return emulators, stack, rows


def timed(stack, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = stack.manage("verify_sync", *args, timeout=1200)
    return time.perf_counter() - t0, out


def by_service(counts: Counter[str]) -> tuple[int, int]:
    kommo = sum(n for route, n in counts.items() if "/api/v4/" in route)
    return kommo, sum(counts.values()) - kommo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=10)
    args = parser.parse_args()
    pg = postgres_server_url()
    if not pg:
        sys.exit("DATABASE_URL must point at a PostgreSQL server (source scripts/pg.sh && pg_start)")
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(pg, Path(tmp))
        try:
            emulators, stack, rows = make_world(run, args.bookings, args.hosts, Path(tmp))
            baseline, _ = timed(stack, "--days", "0")  # Django start-up, no bookings
            results = []
            for label, drift in (("steady state (nothing drifted)", 0), ("1% of tasks and meetings deleted", 0.01)):
                gone = rows[: int(len(rows) * drift)]
                for r in gone:
                    emulators.control("kommo", "POST", "delete_task", {"id": r["task_id"]})
                    emulators.control("zoom", "POST", "delete_meeting", {"id": r["meeting_id"]})
                before = emulators.counts()
                seconds, out = timed(stack, "--days", "14")
                cost = emulators.counts() - before
                kommo, zoom = by_service(cost)
                results.append((label, kommo, zoom, seconds - baseline, out.strip().splitlines()[-1], dict(cost)))
        finally:
            run.close()
    scale = 1000 / args.bookings
    print(f"{args.bookings} live bookings, {args.hosts} Zoom hosts; Django start-up {baseline:.2f}s subtracted")
    for label, kommo, zoom, seconds, summary, cost in results:
        print(f"\n{label}: {summary}")
        print(f"  per 1,000 bookings: Kommo {kommo * scale:.0f} requests, Zoom {zoom * scale:.0f} requests, "
              f"{seconds * scale:.2f} s")  # fmt: skip
        print(f"  requests by route: {cost}")


if __name__ == "__main__":
    main()
