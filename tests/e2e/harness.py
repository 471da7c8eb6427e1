"""Real processes for end-to-end tests: a fresh PostgreSQL database, gunicorn and django-q2 clusters.

Everything listens on loopback only. Each stack gets its own database on the PostgreSQL server named
by DATABASE_URL (scripts/test.sh starts a throwaway one), so runs never see each other's rows.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bookings.signature import signature_header

ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = "e2e-signing-key-" + "k" * 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; return its value. Bounded: raises after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def postgres_server_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    name = f"calsync_e2e_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(server_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Process:
    """A child process whose output goes to a log file (shown when a test fails)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self, sig: int = signal.SIGKILL, *, wait: float = 15) -> None:
        """Signal the whole process group: a qcluster's worker children die with it, as in a crash."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=wait)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM, wait=3)
        # Whatever is left of the group (qcluster's children take their time) goes now.
        self.kill(signal.SIGKILL)
        self._log.close()

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def peak_rss_kb(self) -> int:
        """The RSS high-water marks (VmHWM) of the process and all its descendants, summed."""
        return sum(_vm_hwm_kb(pid) for pid in process_tree(self.pid))


def pss_kb(pids: list[int]) -> int:
    """Proportional set size of the processes, summed: shared pages split among their sharers (Linux)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant (from /proc: Linux only)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _vm_hwm_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours without any calsync/Kommo/Zoom/pytest settings."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("KOMMO_", "ZOOM_", "CALSYNC_", "PYTEST"))}
    return {**keep, "PYTHONUNBUFFERED": "1", **extra}


class CalsyncStack:
    """calsync as it runs in production: gunicorn + one or more qcluster processes + PostgreSQL."""

    def __init__(self, database_url: str, log_dir: Path, *, extra_env: dict[str, str] | None = None):
        self.database_url = database_url
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **child_env(),
            "DJANGO_SETTINGS_MODULE": "calsync.settings",
            "CALSYNC_READ_DOTENV": "false",
            "DEBUG": "false",
            "SECRET_KEY": "e2e-" + "s" * 60,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "CALENDLY_SIGNING_KEY": SIGNING_KEY,
            "CALSYNC_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.web: Process | None = None
        self.workers: list[Process] = []
        self.extras: list[Process] = []
        self._cluster_count = 0

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self, *, workers: int = 1, web_workers: int = 2, web_threads: int = 4) -> CalsyncStack:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("createcachetable")
        self.web = Process(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "calsync.wsgi", "--config", "gunicorn.conf.py",
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(web_workers), "--threads", str(web_threads)],
            self.env,
            self.log_dir,
        )  # fmt: skip
        for _ in range(workers):
            self.start_worker()
        wait_for(self._healthy, timeout=30, what="gunicorn /healthz")
        return self

    def start_worker(self) -> Process:
        """One more `manage.py qcluster` (a cluster of CALSYNC_WORKERS task processes)."""
        worker = Process(
            f"qcluster-{self._cluster_count}", [sys.executable, "manage.py", "qcluster"], self.env, self.log_dir
        )
        self._cluster_count += 1
        self.workers.append(worker)
        return worker

    def start_sweeper(self, every: float = 1.0) -> Process:
        """The retry sweeper in a loop (production runs it every minute from django-q's schedule)."""
        sweeper = Process(
            f"sweeper-{len(self.extras)}",
            [sys.executable, "manage.py", "sweep_events", "--every", str(every)],
            self.env,
            self.log_dir,
        )
        self.extras.append(sweeper)
        return sweeper

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        for proc in [*self.extras, *self.workers, self.web]:
            if proc is not None:
                proc.stop()

    def logs(self) -> str:
        procs = [self.web, *self.workers, *self.extras]
        return "\n\n".join(f"--- {p.name} ---\n{p.tail()}" for p in procs if p is not None)

    # --- talking to it ------------------------------------------------------------------------------

    def post(
        self, body: bytes, *, signed: bool = True, path: str = "/webhooks/calendly/", chunked: bool = False
    ) -> tuple[int, dict]:
        """POST a body; `chunked` sends it with `Transfer-Encoding: chunked` (no Content-Length), in 1 KiB chunks."""
        headers = {"Content-Type": "application/json"}
        if not chunked:
            headers["Content-Length"] = str(len(body))
        if signed:
            headers["Calendly-Webhook-Signature"] = signature_header(body, SIGNING_KEY, int(time.time()))
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        payload = (body[i : i + 1024] for i in range(0, len(body), 1024)) if chunked else body
        try:
            try:
                connection.request("POST", path, body=payload, headers=headers, encode_chunked=chunked)
            except (BrokenPipeError, ConnectionResetError):
                # The server may answer (413) and close before reading a large body: its answer is
                # still waiting in our socket's buffer, so read it rather than report a broken pipe.
                pass
            response = connection.getresponse()
            text = response.read()
        finally:
            connection.close()
        try:
            answer = json.loads(text or b"{}")
        except ValueError:
            answer = {"body": text.decode(errors="replace")[:500]}
        return response.status, answer

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def event_statuses(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM bookings_webhookevent GROUP BY status"))

    def wait_until_settled(
        self, expected_events: int, *, timeout: float = 120, interval: float = 0.25
    ) -> dict[str, int]:
        """Wait until every stored event is finished (done/ignored), or fail with the stack's logs.

        `interval`: how often to look; the benchmark looks more often so its timings are not rounded up
        by as much as a whole interval. One connection for all the looks: a new one each time would cost
        PostgreSQL a process start, which a benchmark would count against calsync."""

        conn = psycopg.connect(self.database_url, autocommit=True)

        def settled() -> dict[str, int] | None:
            given_up = conn.execute(
                "SELECT id, attempts, last_error FROM bookings_webhookevent "
                "WHERE status = 'failed' AND next_attempt_at IS NULL"
            ).fetchall()
            if given_up:  # no retry is coming: fail now instead of waiting for the timeout
                raise AssertionError(f"events failed for good: {given_up[:10]}\n{self.logs()}")
            counts = dict(conn.execute("SELECT status, count(*) FROM bookings_webhookevent GROUP BY status").fetchall())
            finished = counts.get("done", 0) + counts.get("ignored", 0)
            return counts if finished >= expected_events and sum(counts.values()) == finished else None

        try:
            return wait_for(settled, timeout=timeout, interval=interval, what=f"{expected_events} events processed")
        except AssertionError as exc:
            errors = self.query(
                "SELECT id, status, attempts, last_error FROM bookings_webhookevent WHERE status <> 'done'"
            )
            raise AssertionError(f"{exc}\nunfinished: {errors[:20]}\n{self.logs()}") from None
        finally:
            conn.close()
