"""calsync benchmark: webhook acks under open-loop load, end-to-end latency, a 500-booking burst, memory.

    bash bench/run.sh            # starts a throwaway PostgreSQL, runs everything, writes docs/benchmarks.md
    bash bench/run.sh --quick    # shorter runs, for trying it out (the report says so)

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
from tests.e2e.harness import SIGNING_KEY, postgres_server_url, process_tree  # noqa: E402
from tests.e2e.world import crm_seed, notes_by_lead, people, tasks_by_lead, zoom_accounts  # noqa: E402

ACK_GOAL_MS = 25.0
KOMMO_RPS = 7


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# --- open-loop load --------------------------------------------------------------------------------------


def open_loop(port: int, bodies: list[bytes], rate: float, *, threads: int = 48) -> tuple[list[float], int]:
    """Send body i at t0 + i/rate, whatever the answers do (open loop). Latency counts from the planned
    send time, so a slow server that delays later sends is charged for it (no coordinated omission).
    Returns (latencies in ms of 2xx answers, number of errors: non-2xx, refused, timeouts)."""
    t0 = time.perf_counter() + 0.2
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


def bench_acks(run: Run, quick: bool) -> dict:
    # Acknowledging is the web process and the database only: no worker runs during this part.
    stack = run.stack(workers=0, extra_env={"CALSYNC_LOG_LEVEL": "WARNING"})
    seconds = 4 if quick else 10
    results = {"fixed": [], "steps": []}
    open_loop(stack.port, created_bodies(200, "warm"), 50)  # warm-up: connections, imports, caches
    results["cpu"] = []
    for rate in (50, 100, 200):
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
        print(f"ack {rate}/s: p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, errors {errors}")
    held = 0
    for rate in (100, 150, 200, 250, 300, 350, 400, 500, 600):
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


# --- end to end -------------------------------------------------------------------------------------------


def sync_env(emulators, **extra: str) -> dict[str, str]:
    return {**emulators.env(), "CALSYNC_LOG_LEVEL": "WARNING", **extra}


def bench_end_to_end(run: Run, quick: bool) -> dict:
    count = 10 if quick else 40
    persons = people(count + 1, prefix="e2e")
    emulators = run.emulators(kommo_seed=crm_seed(persons), zoom_seed=zoom_accounts())
    for name in ("kommo", "zoom"):
        emulators.set_faults(name, [{"fault": "delay", "delay_ms": 50}])
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
            time.sleep(0.02)
        elapsed = time.perf_counter() - sent
        if n:  # the first one warms the caches (Kommo users, Zoom token and host): reported apart
            latencies.append(elapsed)
        else:
            cold = elapsed
        time.sleep(0.3)
    result = {"p50": pct(latencies, 50), "p95": pct(latencies, 95), "count": len(latencies), "cold": cold}
    print(f"e2e: p50 {result['p50']:.2f} s, p95 {result['p95']:.2f} s (cold first booking {cold:.2f} s)")
    return result


def bench_burst(run: Run, quick: bool) -> dict:
    count = 100 if quick else 500
    persons = people(count, prefix="burst")
    emulators = run.emulators(kommo_seed=crm_seed(persons), zoom_seed=zoom_accounts(), zoom_settings={"daily_limit": 0})
    stack = run.stack(workers=1, extra_env=sync_env(emulators, KOMMO_MAX_RPS=str(KOMMO_RPS)))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    bodies = [
        cs.encode(cs.created(cs.booking(email=p.email, name=p.name, start=start + timedelta(minutes=30 * n))))
        for n, p in enumerate(persons)
    ]
    began = time.perf_counter()
    _, errors = open_loop(stack.port, bodies, 200)  # the burst arrives within ~2.5 s
    assert errors == 0, errors
    stack.wait_until_settled(count, timeout=count / KOMMO_RPS * 4 + 120)
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
        "tasks": sum(len(v) for v in tasks_by_lead(kommo).values()),
    }
    print(
        f"burst: {count} bookings in {total:.1f} s, floor {result['floor_s']:.1f} s ({requests} Kommo requests), "
        f"429s {result['rate_limited']}, {result['per_booking']:.2f} requests/booking"
    )
    return result


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


def report(m: dict, acks: dict, e2e: dict, burst: dict, quick: bool) -> str:
    at100 = next(r for r in acks["fixed"] if r[0] == 100)
    within = burst["total_s"] <= burst["floor_s"] * 1.10
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `bash bench/run.sh`{' --quick (shortened runs)' if quick else ''} on "
        f"{datetime.now(UTC):%Y-%m-%d}. Every process on one machine, over loopback: the load generator, "
        "gunicorn (2 workers × 4 threads), `manage.py qcluster` (2 task processes), PostgreSQL and the Kommo/Zoom "
        "emulators (`sandbox/`). Re-run it for your own hardware; the figures below are this machine's.",
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
        "## Webhook acknowledgement (gunicorn + PostgreSQL)",
        "",
        "Open-loop load: request *i* is sent at t0 + *i*/rate by a pool of 48 threads whatever the answers do, "
        "each a new connection with a fresh signed `invitee.created` delivery; latency counts from the planned send "
        "time. No worker runs during this part (acknowledging is store + enqueue only).",
        "",
        "| rate (req/s) | requests | p50 (ms) | p99 (ms) | errors |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r} | {n} | {p50:.1f} | {p99:.1f} | {err} |" for r, p50, p99, err, n in acks["fixed"]],
        "",
        "Stepping the rate up (5 s per step) until p99 exceeds 25 ms or an error appears: "
        + ", ".join(f"{r}/s → p99 {p99:.1f} ms{f', {err} errors' if err else ''}" for r, p99, err in acks["steps"])
        + f". **Highest rate held with p99 under 25 ms: {acks['held']} requests/second.**",
        "",
        f"CPU per acknowledged request (ms, from /proc: utime + stime) and the cores busy meanwhile (of {m['cores']}):",
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
        "## End to end, and the burst",
        "",
        "| measure | result | goal | |",
        "| --- | ---: | ---: | --- |",
        f"| ack p99 at 100 req/s | {at100[2]:.1f} ms | ≤ 25 ms | {verdict(at100[2] <= 25 and at100[3] == 0)} |",
        f"| delivery → task + note + meeting in the emulators, p50 (50 ms API latency) | {e2e['p50']:.2f} s | | |",
        f"| … p95 ({e2e['count']} bookings, one at a time, warm caches) | {e2e['p95']:.2f} s | ≤ 2 s | "
        f"{verdict(e2e['p95'] <= 2)} |",
        f"| … the first booking, cold caches (user list, token, host lookup) | {e2e['cold']:.2f} s | | |",
        f"| burst of {burst['bookings']} bookings: total time | {burst['total_s']:.1f} s | ≤ floor + 10% "
        f"({burst['floor_s'] * 1.1:.1f} s) | {verdict(within)} |",
        f"| … floor: Kommo requests ÷ 7 | {burst['floor_s']:.1f} s ({burst['kommo_requests']} requests) | | |",
        f"| … 429s from Kommo | {burst['rate_limited']} | 0 | {verdict(burst['rate_limited'] == 0)} |",
        f"| … Kommo requests per booking (+ the user list once) | {burst['per_booking']:.3f} | ≤ 4 | "
        f"{verdict(burst['per_booking'] - 1 / burst['bookings'] <= 4)} |",
        f"| web peak memory (gunicorn master + workers, VmHWM summed) | {acks['web_rss_mb']:.0f} MB | | |",
        f"| worker peak memory (qcluster + its processes, VmHWM summed) | {burst['worker_rss_mb']:.0f} MB | | |",
        "",
        f"Burst Kommo requests by route: {', '.join(f'{k}: {v}' for k, v in sorted(burst['by_route'].items()))}; "
        f"{burst['tasks']} tasks were created.",
        "",
        "## What limits these figures",
        "",
        "- **Acknowledgement** is CPU: each ack costs the web process the CPU shown above (Django + DRF, the "
        "HMAC check, JSON parsing, the event INSERT, django-q's enqueue INSERT with a connection health check) "
        "plus PostgreSQL's share, and the load generator runs on the same cores. Two gunicorn workers each "
        "hold the GIL for their 4 threads. Once the machine's cores are busy (or the hypervisor steals them: "
        "'stolen' column), requests queue and the p99 climbs by tens of milliseconds, then by seconds.",
        "- **End to end** is the Kommo limit: 4 requests spaced 1.05/7 s apart (~0.45 s) plus 5 emulated API "
        "round trips of 50 ms and the queue's 0.2 s poll.",
        "- **The burst** is Kommo's 7 requests/second by design: calsync spaces requests 1.05/7 s apart "
        "(KOMMO_RATE_MARGIN = 5% headroom for jitter, docs/crm.md), so it finishes about 5% above the floor "
        "with no 429. Without the margin the same burst drew ~170 429s and missed the goal by minutes.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs (for trying the script out)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--parts", nargs="*", choices=["acks", "e2e", "burst"], help="re-run only these; the rest from the last run"
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
    for part, fn in (("acks", bench_acks), ("e2e", bench_end_to_end), ("burst", bench_burst)):
        if args.report_only or (args.parts and part not in args.parts):
            continue
        run = Run(server, log_dir / part)
        (log_dir / part).mkdir(exist_ok=True)
        try:
            results[part] = fn(run, args.quick)
            results["machine"] = machine(run)
        finally:
            run.close()
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps(results))
    results = json.loads(saved.read_text())  # the same shapes whether measured now or loaded
    text = report(results["machine"], results["acks"], results["e2e"], results["burst"], args.quick)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
