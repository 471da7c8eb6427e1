"""calsync benchmark: webhook acks under open-loop load, end-to-end latency, a 500-booking burst, memory.

    bash bench/run.sh                 # starts a throwaway PostgreSQL, runs every part twice, writes docs/benchmarks.md
    bash bench/run.sh --quick         # shorter runs, for trying it out (the report says so)
    bash bench/run.sh --parts acks    # re-run some parts; the others come from the last run, or stay empty

Everything runs on loopback with the same real processes as the end-to-end tests (tests/e2e): gunicorn,
qcluster, PostgreSQL and the Kommo/Zoom emulators. A script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from bookings.signature import signature_header  # noqa: E402
from sandbox import calendly_sender as cs  # noqa: E402
from tests.e2e.conftest import Run  # noqa: E402
from tests.e2e.harness import SIGNING_KEY, CalsyncStack, postgres_server_url, process_tree, pss_kb  # noqa: E402
from tests.e2e.world import crm_seed, notes_by_lead, people, tasks_by_lead, zoom_accounts  # noqa: E402

ACK_GOAL_MS = 25.0
KOMMO_RPS = 7


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# --- open-loop load --------------------------------------------------------------------------------------


def open_loop(
    port: int, bodies: list[bytes], rate: float, *, threads: int = 48, t0: float | None = None
) -> tuple[list[float], int]:
    """Send body i at t0 + i/rate, whatever the answers do (open loop). Latency counts from the planned
    send time, so a slow server that delays later sends is charged for it (no coordinated omission).
    `t0` (perf_counter) defaults to 0.2 s from now, time for the sending threads to start.
    Returns (latencies in ms of 2xx answers, number of errors: non-2xx, refused, timeouts)."""
    t0 = time.perf_counter() + 0.2 if t0 is None else t0
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            planned = t0 + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = bodies[i]
            headers = {
                "Content-Type": "application/json",
                "Calendly-Webhook-Signature": signature_header(body, SIGNING_KEY, int(time.time())),
            }
            ok = False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/webhooks/calendly/", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                ok = 200 <= response.status < 300
            except OSError:
                pass
            elapsed = (time.perf_counter() - planned) * 1000
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors += 1

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=len(bodies) / rate + 30)
    return latencies, errors


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def cpu_snapshot(web_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds used so far per process: the web process tree, PostgreSQL, this load generator."""
    return {
        "web": {pid: _cpu_s(pid) for pid in process_tree(web_pid)},
        "postgres": {pid: _cpu_s(pid) for pid in postgres_pids()},
        "load generator": {os.getpid(): _cpu_s(os.getpid())},
    }


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """Seconds used between two snapshots; processes that exited meanwhile are left out, new ones count."""
    return {k: sum(v - before[k].get(pid, 0.0) for pid, v in after[k].items()) for k in after}


def machine_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq, steal, sum(values[:8])


def created_bodies(count: int, tag: str) -> list[bytes]:
    now = datetime.now(UTC)
    return [
        cs.encode(cs.created(cs.booking(email=f"{tag}{n}@load.example", name=f"Load {n}", now=now)))
        for n in range(count)
    ]


def sqlite_stack(run: Run, *, workers: int, extra_env: dict[str, str]) -> CalsyncStack:
    """calsync on its default embedded database: a SQLite file (WAL, immediate transactions, queued writers)."""
    path = run.log_dir / "calsync.sqlite3"
    stack = CalsyncStack(f"sqlite:///{path}", run.log_dir, extra_env=extra_env)
    run.stacks.append(stack)
    return stack.start(workers=workers)


def bench_acks(run: Run, quick: bool, *, database: str = "postgres") -> dict:
    if database == "sqlite":
        # The embedded default while the worker writes: a backlog of bookings syncs against the emulators
        # (Kommo at 7/s) during the whole measurement, so acks share the database file with its writes.
        persons = people(400, prefix="sq")
        emulators = run.emulators(kommo_seed=crm_seed(persons), zoom_seed=zoom_accounts())
        stack = sqlite_stack(run, workers=1, extra_env=sync_env(emulators))
        rates, steps = (50, 100), ()
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=4)
        backlog = [
            cs.encode(cs.created(cs.booking(email=p.email, name=p.name, start=start + timedelta(minutes=30 * n))))
            for n, p in enumerate(persons)
        ]
        open_loop(stack.port, backlog, 100)
    else:
        # Acknowledging is the web process and the database only: no worker runs during this part.
        stack = run.stack(workers=0, extra_env={"CALSYNC_LOG_LEVEL": "WARNING"})
        rates, steps = (50, 100, 200), (100, 150, 200, 250, 300, 350, 400, 500, 600)
    seconds = 4 if quick else 10
    results = {"fixed": [], "steps": [], "database": database}
    open_loop(stack.port, created_bodies(200, "warm"), 50)  # warm-up: connections, imports, caches
    results["cpu"] = []
    for rate in rates:
        bodies = created_bodies(rate * seconds, f"r{rate}-")
        before, ticks, began = cpu_snapshot(stack.web.pid), machine_ticks(), time.perf_counter()
        latencies, errors = open_loop(stack.port, bodies, rate)
        wall, after, ticks_after = time.perf_counter() - began, cpu_snapshot(stack.web.pid), machine_ticks()
        results["fixed"].append((rate, pct(latencies, 50), pct(latencies, 99), errors, len(latencies) + errors))
        # CPU per request by component; how busy the whole machine was, and how much the hypervisor stole.
        used = cpu_used(before, after)
        busy, steal, total = (b - a for a, b in zip(ticks, ticks_after, strict=True))
        per_request = {k: v / len(bodies) * 1000 for k, v in used.items()}
        results["cpu"].append((rate, per_request, sum(used.values()) / wall, busy / total * 2, steal / total * 2))
        p50, p99 = pct(latencies, 50), pct(latencies, 99)
        print(f"ack {database} {rate}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, errors {errors}")
    held = 0
    for rate in steps:
        latencies, errors = open_loop(stack.port, created_bodies(rate * (3 if quick else 5), f"s{rate}-"), rate)
        p99 = pct(latencies, 99)
        results["steps"].append((rate, p99, errors))
        print(f"step {rate}/s: p99 {p99:.1f} ms, errors {errors}")
        if errors or p99 > ACK_GOAL_MS:
            break
        held = rate
    results["held"] = held
    results["web_rss_mb"] = stack.web.peak_rss_kb() / 1024
    return results


def bench_acks_sqlite(run: Run, quick: bool) -> dict:
    return bench_acks(run, quick, database="sqlite")


# --- end to end -------------------------------------------------------------------------------------------


def sync_env(emulators, **extra: str) -> dict[str, str]:
    return {**emulators.env(), "CALSYNC_LOG_LEVEL": "WARNING", **extra}


def bench_end_to_end(run: Run, quick: bool) -> dict:
    """One booking at a time on an idle system, the emulators answering at once (no added API latency)."""
    count = 10 if quick else 40
    persons = people(count + 1, prefix="e2e")
    emulators = run.emulators(kommo_seed=crm_seed(persons), zoom_seed=zoom_accounts())
    stack = run.stack(workers=1, extra_env=sync_env(emulators))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    latencies = []
    for n, person in enumerate(persons):
        b = cs.booking(email=person.email, name=person.name, start=start + timedelta(hours=n))
        sent = time.perf_counter()
        status, _ = stack.post(cs.encode(cs.created(b)))
        assert status == 202, status
        topic = f"30-min Product Demo with {person.name}"
        deadline = sent + 30
        while time.perf_counter() < deadline:
            kommo, zoom = emulators.state("kommo"), emulators.state("zoom")
            if (
                notes_by_lead(kommo).get(person.lead_id)
                and tasks_by_lead(kommo).get(person.lead_id)
                and any(m["topic"] == topic for m in zoom["meetings"])
            ):
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - sent
        if n:  # the first one warms the caches (Kommo users, Zoom token and host): reported apart
            latencies.append(elapsed)
        else:
            cold = elapsed
        time.sleep(1.2)  # idle: the last booking's requests have left Kommo's one-second window
    # Where the time went, from calsync's own records: stored → attempt started (the queue's pickup), and
    # the attempt itself (Zoom + Kommo); the rest is the acknowledgement and the bench seeing the result.
    rows = stack.query(
        "SELECT EXTRACT(EPOCH FROM a.started_at - e.received_at), EXTRACT(EPOCH FROM a.finished_at - a.started_at) "
        "FROM bookings_processingattempt a JOIN bookings_webhookevent e ON e.id = a.event_id ORDER BY e.id"
    )[1:]
    result = {
        "pickup_p50": pct([float(r[0]) for r in rows], 50),
        "attempt_p50": pct([float(r[1]) for r in rows], 50),
        "attempt_p90": pct([float(r[1]) for r in rows], 90),
        "p50": pct(latencies, 50),
        "p90": pct(latencies, 90),
        "p95": pct(latencies, 95),
        "count": len(latencies),
        "cold": cold,
        "kommo_requests": emulators.state("kommo")["requests"]["total"],
    }
    print(
        f"e2e: p50 {result['p50']:.3f} s, p90 {result['p90']:.3f} s (cold first booking {cold:.2f} s); "
        f"pickup p50 {result['pickup_p50']:.3f} s, attempt p50 {result['attempt_p50']:.3f} s "
        f"p90 {result['attempt_p90']:.3f} s"
    )
    return result


def bench_burst(run: Run, quick: bool, *, count: int | None = None) -> dict:
    count = count or (100 if quick else 500)
    persons = people(count, prefix="burst")
    emulators = run.emulators(kommo_seed=crm_seed(persons), zoom_seed=zoom_accounts(), zoom_settings={"daily_limit": 0})
    stack = run.stack(workers=1, extra_env=sync_env(emulators, KOMMO_MAX_RPS=str(KOMMO_RPS)))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    bodies = [
        cs.encode(cs.created(cs.booking(email=p.email, name=p.name, start=start + timedelta(minutes=30 * n))))
        for n, p in enumerate(persons)
    ]
    began = time.perf_counter() + 0.2  # the first delivery's planned sending: the clock starts there
    _, errors = open_loop(stack.port, bodies, 200, t0=began)  # the burst arrives within count / 200 s
    assert errors == 0, errors
    stack.wait_until_settled(count, timeout=count / KOMMO_RPS * 4 + 120, interval=0.05)
    total = time.perf_counter() - began
    kommo = emulators.state("kommo")
    requests = kommo["requests"]["total"]
    result = {
        "bookings": count,
        "total_s": total,
        "kommo_requests": requests,
        "floor_s": requests / KOMMO_RPS,
        "rate_limited": kommo["requests"]["rate_limited"],
        "per_booking": requests / count,
        "by_route": kommo["requests"]["by_route"],
        "worker_rss_mb": sum(w.peak_rss_kb() for w in stack.workers) / 1024,
        "web_rss_mb": stack.web.peak_rss_kb() / 1024,
        # The measure: every calsync process's PSS once the burst has landed (shared pages counted once).
        "pss_mb": pss_kb([p for proc in (stack.web, *stack.workers) for p in process_tree(proc.pid)]) / 1024,
        "tasks": sum(len(v) for v in tasks_by_lead(kommo).values()),
        "notes": sum(len(v) for v in notes_by_lead(kommo).values()),
    }
    print(
        f"burst: {count} bookings in {total:.1f} s, floor {result['floor_s']:.1f} s ({requests} Kommo requests), "
        f"429s {result['rate_limited']}, {result['per_booking']:.2f} requests/booking"
    )
    return result


def bench_burst40(run: Run, quick: bool) -> dict:
    return bench_burst(run, quick, count=40)


# --- the report -----------------------------------------------------------------------------------------------


def machine(run: Run) -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in Path("/etc/os-release").read_text().splitlines()
            if line.startswith("PRETTY_NAME")
        ),
        platform.platform(),
    )
    import psycopg

    with psycopg.connect(run.pg_server) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": mem_kb / 1024 / 1024,
        "os": f"{os_name}, kernel {platform.release()}",
        "python": platform.python_version(),
        "postgres": pg,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def both(values: list[float], fmt: str = "{:.2f}") -> str:
    """Every run's figure, so the spread between runs is visible: "0.18 · 0.21"."""
    return " · ".join(fmt.format(v) for v in values) if values else "not measured"


def worst(values: list[float]) -> float:
    return max(values) if values else float("inf")


# The same work measured against a self-hosted n8n 2.40.7 flow on this machine (signature check → Zoom
# meeting → Kommo contact search → note → task), from the performance issue's table: defaults / concurrency 1.
N8N = {
    "ack": "1,472 / 1,769 ms · 1,392 / 2,384 ms",
    "one": "0.27 s · 0.25 s",
    "burst40": "3/40 landed, 112 × 429, 37 orphan meetings · 40/40, 25.6 s, 17 × 429",
    "per_booking": "3.05 · 3.43",
    "memory": "1,425 MiB · 1,224 MiB",
}
BEFORE = {  # calsync before this work, from the same table and the committed report of 2026-11-22
    "ack": "77 / 357 ms (SQLite), 58 / 117 ms (PostgreSQL)",
    "one": "0.65–0.80 s (p90 0.85 s)",
    "burst40": "40/40, 24.4 s, 0 × 429",
    "per_booking": "4.0",
    "memory": "276–288 MiB",
}


def ack_section(title: str, runs: list[dict], cores: int) -> list[str]:
    lines = [f"### {title}", ""]
    for n, acks in enumerate(runs, 1):
        lines += [
            f"Run {n}:",
            "",
            "| rate (req/s) | requests | p50 (ms) | p99 (ms) | errors |",
            "| ---: | ---: | ---: | ---: | ---: |",
            *[f"| {r} | {c} | {p50:.1f} | {p99:.1f} | {err} |" for r, p50, p99, err, c in acks["fixed"]],
            "",
        ]
        if acks["steps"]:
            lines += [
                "Stepping the rate up (5 s per step) until p99 exceeds 25 ms or an error appears: "
                + ", ".join(
                    f"{r}/s → p99 {p99:.1f} ms{f', {err} errors' if err else ''}" for r, p99, err in acks["steps"]
                )
                + f". **Highest rate held with p99 under 25 ms: {acks['held']} requests/second.**",
                "",
            ]
        lines += [
            f"CPU per acknowledged request (ms, from /proc: utime + stime) and the cores busy meanwhile (of {cores}):",
            "",
            "| rate (req/s) | " + " | ".join(acks["cpu"][0][1]) + " | cores: these | cores: whole machine | stolen |",
            "| ---: |" + " ---: |" * (len(acks["cpu"][0][1]) + 3),
            *[
                f"| {rate} | "
                + " | ".join(f"{v:.2f}" for v in per.values())
                + f" | {ours:.2f} | {busy:.2f} | {steal:.2f} |"
                for rate, per, ours, busy, steal in acks["cpu"]
            ],
            "",
        ]
    return lines


def report(results: dict, quick: bool) -> str:
    m = results["machine"]
    acks, sqlite = results.get("acks", []), results.get("acks_sqlite", [])
    e2e, burst40, burst = results.get("e2e", []), results.get("burst40", []), results.get("burst", [])

    def at(runs: list[dict], rate: int, i: int) -> list[float]:
        return [r[i] for a in runs for r in a["fixed"] if r[0] == rate]

    web_cpu = [a["cpu"][1][1]["web"] for a in acks if len(a["cpu"]) > 1]
    p99_100, sq_p99_100 = at(acks, 100, 2), at(sqlite, 100, 2)
    held = [a["held"] for a in acks]
    p50s, p90s = [r["p50"] for r in e2e], [r["p90"] for r in e2e]
    per40, per500 = [b["per_booking"] for b in burst40], [b["per_booking"] for b in burst]
    memory = [a["web_rss_mb"] for a in acks[:1]] + [b["worker_rss_mb"] for b in burst[:1]]

    def burst_rows(name: str, runs: list[dict]) -> list[str]:
        return [
            f"| {name}: landed (tasks) | {both([b['tasks'] for b in runs], '{:.0f}')} of "
            f"{runs[0]['bookings'] if runs else '?'} | all | "
            f"{verdict(bool(runs) and all(b['tasks'] == b['bookings'] for b in runs))} |",
            f"| {name}: total time (s) | {both([b['total_s'] for b in runs], '{:.1f}')} | ≤ 1.1 × floor "
            f"({both([b['floor_s'] * 1.1 for b in runs], '{:.1f}')}) | "
            f"{verdict(bool(runs) and all(b['total_s'] <= 1.1 * b['floor_s'] for b in runs))} |",
            f"| {name}: Kommo requests per booking | {both([b['per_booking'] for b in runs], '{:.3f}')} | ≤ 1.5 | "
            f"{verdict(worst([b['per_booking'] for b in runs]) <= 1.5)} |",
            f"| {name}: 429s | {both([b['rate_limited'] for b in runs], '{:.0f}')} | 0 | "
            f"{verdict(bool(runs) and all(b['rate_limited'] == 0 for b in runs))} |",
        ]

    lines = [
        "# Benchmarks",
        "",
        f"Measured by `bash bench/run.sh`{' --quick (shortened runs)' if quick else ''} on "
        f"{datetime.now(UTC):%Y-%m-%d}, every part run {results.get('repeat', 1)} times: where a cell shows "
        '"a · b", those are the runs, so the spread is visible. Every process on one machine, over loopback: the '
        "load generator, gunicorn (2 workers × 4 threads), `manage.py qcluster` (2 task processes), PostgreSQL "
        "and the Kommo/Zoom emulators (`sandbox/`: Kommo allows 7 requests in any sliding second, no added API "
        "latency). Re-run it for your own hardware; the figures below are this machine's.",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['cores']} |",
        f"| RAM | {m['ram_gb']:.1f} GB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| PostgreSQL | {m['postgres']} (throwaway server of scripts/pg.sh: fsync off) |",
        "",
        "## Against the goals, beside calsync before and an n8n flow doing the same job",
        "",
        "n8n: a self-hosted n8n 2.40.7 flow (signature check → Zoom meeting → Kommo contact search → note → task) "
        "on this machine with the same emulators; two figures: its defaults · concurrency 1.",
        "",
        "| measure | now (each run) | goal | | calsync before | n8n |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
        f"| one booking, delivery → note + task + meeting, p50 (s) | {both(p50s, '{:.3f}')} | ≤ 0.2 | "
        f"{verdict(worst(p50s) <= 0.2)} | {BEFORE['one']} | {N8N['one']} |",
        f"| … p90 (s) | {both(p90s, '{:.3f}')} | ≤ 0.3 | {verdict(worst(p90s) <= 0.3)} | | |",
        *[
            row + (f" {BEFORE['burst40']} | {N8N['burst40']} |" if i == 0 else " | |")
            for i, row in enumerate(burst_rows("40-booking burst", burst40))
        ],
        *[row + " | |" for row in burst_rows("500-booking burst", burst)],
        f"| Kommo requests per booking (40 · 500) | {both(per40, '{:.3f}')} · {both(per500, '{:.3f}')} | ≤ 1.5 | "
        f"{verdict(worst(per40 + per500) <= 1.5)} | {BEFORE['per_booking']} | {N8N['per_booking']} |",
        f"| web CPU per ack at 100 req/s (ms) | {both(web_cpu)} | ≤ 3 | {verdict(worst(web_cpu) <= 3)} | ~6 | |",
        "| ack p50 / p99 at 100 req/s, PostgreSQL (ms) | "
        + " · ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(at(acks, 100, 1), p99_100, strict=True))
        + f" | p99 ≤ 25 | {verdict(worst(p99_100) <= 25)} | {BEFORE['ack']} | {N8N['ack']} |",
        "| ack p50 / p99 at 100 req/s, SQLite while the worker writes (ms) | "
        + " · ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(at(sqlite, 100, 1), sq_p99_100, strict=True))
        + f" | p99 ≤ 25 | {verdict(worst(sq_p99_100) <= 25)} | | |",
        f"| highest rate held with ack p99 ≤ 25 ms (req/s) | {both(held, '{:.0f}')} | > 250 | "
        f"{verdict(bool(held) and min(held) > 250)} | 200 | |",
        f"| memory: web + worker peak (VmHWM summed, MB) | {' + '.join(f'{v:.0f}' for v in memory)} | | | | |",
        f"| memory: PSS of web + worker after the 40-booking burst (MiB) | "
        f"{both([b['pss_mb'] for b in burst40 if 'pss_mb' in b], '{:.0f}')} | | | {BEFORE['memory']} (PSS) | "
        f"{N8N['memory']} |",
        "",
    ]
    if e2e:
        lines += [
            f"One booking at a time: {e2e[0]['count']} bookings after a cold first one "
            f"({both([r['cold'] for r in e2e])} s: user list, Zoom token and host lookup), "
            f"{both([r['kommo_requests'] / (r['count'] + 1) for r in e2e])} Kommo requests each. From calsync's "
            f"records, p50: stored → attempt started (queue pickup) "
            f"{both([r['pickup_p50'] for r in e2e], '{:.3f}')} s; "
            f"the attempt (Zoom + Kommo) {both([r['attempt_p50'] for r in e2e], '{:.3f}')} s "
            f"(p90 {both([r['attempt_p90'] for r in e2e], '{:.3f}')} s); the rest is the acknowledgement and "
            "the bench polling the emulators every 10 ms to see the result.",
            "",
        ]
    for name, runs in (("40-booking burst", burst40), ("500-booking burst", burst)):
        if runs:
            lines += [
                f"{name}, Kommo requests by route (run 1): "
                + ", ".join(f"{k}: {v}" for k, v in sorted(runs[0]["by_route"].items()))
                + f"; {runs[0]['tasks']} tasks and {runs[0]['notes']} notes were created.",
                "",
            ]
    lines += ["## Webhook acknowledgement", ""]
    lines += [
        "Open-loop load: request *i* is sent at t0 + *i*/rate by a pool of 48 threads whatever the answers do, "
        "each a new connection with a fresh signed `invitee.created` delivery; latency counts from the planned send "
        "time. On PostgreSQL no worker runs (acknowledging is store + enqueue only); on SQLite a worker syncs a "
        "backlog of 400 bookings meanwhile, writing to the same database file.",
        "",
    ]
    if acks:
        lines += ack_section("PostgreSQL", acks, m["cores"])
    if sqlite:
        lines += ack_section(
            "SQLite (the embedded default: WAL, immediate transactions, writers queued on a lock file)",
            sqlite,
            m["cores"],
        )
    lines += [LIMITS]
    return "\n".join(lines)


LIMITS = """## What limits these figures

See the notes at the end of this file, kept by hand next to the generated figures."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs (for trying the script out)")
    parser.add_argument("--repeat", type=int, default=2, help="run every part this many times (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--parts", nargs="*", choices=list(PARTS), help="re-run only these; the rest from the last run (if any)"
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the last run's figures")
    args = parser.parse_args()
    server = postgres_server_url()
    if server is None:
        sys.exit("set DATABASE_URL=postgres://… (bench/run.sh starts a throwaway server)")
    log_dir = Path(os.environ.get("BENCH_LOG_DIR") or tempfile.mkdtemp(prefix="calsync-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"process logs in {log_dir}")
    saved = ROOT / "var" / "bench-results.json"
    results = json.loads(saved.read_text()) if (args.parts or args.report_only) and saved.exists() else {}
    if results and not isinstance(results.get("e2e", []), list):  # a run of the older single-run layout
        results = {}
    for part, fn in PARTS.items():
        if args.report_only or (args.parts and part not in args.parts):
            continue
        results[part] = []
        for n in range(args.repeat):
            run = Run(server, log_dir / f"{part}-{n + 1}")
            run.log_dir.mkdir(exist_ok=True)
            try:
                results[part].append(fn(run, args.quick))
                results["machine"] = machine(run)
            finally:
                run.close()
    results["repeat"] = args.repeat if not args.report_only else results.get("repeat", 1)
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps(results))
    results = json.loads(saved.read_text())  # the same shapes whether measured now or loaded
    if "machine" not in results:
        sys.exit("nothing measured yet: run without --report-only first")
    text = report(results, args.quick)
    notes = (
        args.out.read_text().split(NOTES_MARK, 1)[1] if args.out.exists() and NOTES_MARK in args.out.read_text() else ""
    )
    args.out.write_text(text + "\n\n" + NOTES_MARK + notes)
    print(text)


NOTES_MARK = "<!-- notes kept by hand below: bench/run.py keeps them when it rewrites the figures above -->"
PARTS = {
    "acks": bench_acks,
    "acks_sqlite": bench_acks_sqlite,
    "e2e": bench_end_to_end,
    "burst40": bench_burst40,
    "burst": bench_burst,
}


if __name__ == "__main__":
    main()
