"""The machinery both emulators share: a loopback HTTP server, routing, fault injection, request counts,
the private control API under ``/__emulator__/`` and the two ways to run one (a thread, or a process).

Stdlib only (no Django import), so ``python -m sandbox.kommo_emulator`` runs without any settings.
A subclass provides its routes, its seed format, its state snapshot and its own error bodies.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sandbox.faults import APPLIED_BUT_LOST, ERROR_BEFORE, RATE_LIMIT, FaultConfigError, FaultPlan
from sandbox.wire import (
    DROP,
    BadRequestBody,
    Request,
    Response,
    Route,
    Server,
    SlidingWindow,
    is_loopback,
    json_response,
    make_handler,
    route,
)

CONTROL_PREFIX = "/__emulator__/"

__all__ = ["DROP", "Emulator", "Request", "Response", "Route", "SlidingWindow", "json_response", "route"]


class Emulator:
    """Base class. Subclasses set `name`, `DEFAULT_CONFIG` and implement the hooks at the bottom."""

    name: ClassVar[str] = "emulator"
    DEFAULT_CONFIG: ClassVar[dict[str, Any]] = {}
    LOG_SIZE: ClassVar[int] = 20000

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: Mapping[str, Any] | None = None,
        fault_seed: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        **config: Any,
    ):
        if not is_loopback(host):
            raise ValueError(f"emulators listen on loopback only, not {host!r}")
        unknown = set(config) - set(self.DEFAULT_CONFIG)
        if unknown:
            raise TypeError(f"unknown {self.name} emulator settings: {sorted(unknown)}")
        self.host, self.port = host, port
        self.lock = threading.RLock()
        self._clock, self._sleep = clock, sleep
        self.clock_offset = 0.0
        self.faults = FaultPlan(seed=fault_seed)
        self._initial_config = {**self.DEFAULT_CONFIG, **config}
        self.config = dict(self._initial_config)
        self._seed: dict[str, Any] = json.loads(json.dumps(seed)) if seed else {}
        self.routes: list[Route] = self.build_routes()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        # Called (under the lock) after every request that may have changed the data, e.g. to save it.
        self.on_change: Callable[[Emulator], None] | None = None
        self._reset_counters()
        self.reset_state(self._seed)

    # --- running ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} emulator is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Listen and serve from a daemon thread; returns the base URL (the real port when port=0)."""
        self._server = Server((self.host, self.port), make_handler(self))
        # A short poll keeps stop() quick (serve_forever checks for shutdown between polls).
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.02), name=f"{self.name}-emulator", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @classmethod
    @contextmanager
    def running(cls, **kwargs: Any) -> Iterator[Emulator]:
        """``with KommoEmulator.running(seed=…) as emu: requests.get(emu.url + …)``."""
        emulator = cls(**kwargs)
        emulator.start()
        try:
            yield emulator
        finally:
            emulator.stop()

    def now(self) -> float:
        return self._clock() + self.clock_offset

    # --- the Python side of the control API (the HTTP side calls the same methods) --------------------

    def state(self, *, include_log: bool = False) -> dict[str, Any]:
        with self.lock:
            requests_part: dict[str, Any] = {
                "total": self._total,
                "by_route": dict(self._by_route),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "by_route_status": {r: dict(s) for r, s in self._by_route_status.items()},
                "rate_limited": self._by_status.get(429, 0),
                "faults_injected": dict(self._faults_injected),
            }
            if include_log:
                requests_part["log"] = list(self._log)
            return {"emulator": self.name, **self.snapshot(), "requests": requests_part}

    def reset(self) -> None:
        """Back to the last seed: data, counters, faults, limits, clock offset and settings."""
        with self.lock:
            self.faults.clear()
            self.config = dict(self._initial_config)
            self.clock_offset = 0.0
            self._reset_counters()
            self.reset_state(self._seed)

    def load_seed(self, seed: Mapping[str, Any]) -> None:
        with self.lock:
            self._seed = json.loads(json.dumps(seed))
            self.reset()

    def set_faults(self, rules: list[Mapping[str, Any]], *, seed: int | None = None, append: bool = False) -> None:
        self.faults.configure(rules, seed=seed, append=append)

    def configure(self, **changes: Any) -> None:
        unknown = set(changes) - set(self.DEFAULT_CONFIG)
        if unknown:
            raise FaultConfigError(f"unknown settings {sorted(unknown)}; known: {sorted(self.DEFAULT_CONFIG)}")
        with self.lock:
            self.config.update(changes)
            self.on_configure()

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds

    # --- request handling --------------------------------------------------------------------------------

    def handle(self, req: Request) -> Response | object:
        if not is_loopback(req.client_host):
            return Response(403, b"emulators answer loopback clients only\n", "text/plain")
        if req.path.startswith(CONTROL_PREFIX):
            answer = self._control(req)
            if req.method != "GET":
                with self.lock:
                    self._changed()
            return answer
        if req.method == "GET":
            with self.lock:
                page = self.page(req)
            if page is not None:
                return page
        matched = self._match(req)
        if isinstance(matched, Response):
            return self._record(req, f"{req.method} (unmatched)", matched)
        found, params = matched
        jitter_ms = float(self.config.get("arrival_jitter_ms") or 0)
        if jitter_ms:
            # A network path that holds some requests back: the rate window counts this one up to
            # `arrival_jitter_ms` after it was sent, as the real API counts on arrival, not on sending.
            self._sleep(random.uniform(0, jitter_ms) / 1000)  # noqa: S311 - a simulated delay, not a secret
        with self.lock:
            refused = self.gate(req, found)
        if refused is not None:
            return self._record(req, found.name, refused)
        decision = self.faults.decide(req.method, req.path)
        if decision.delay_ms:
            self._sleep(decision.delay_ms / 1000)  # outside the lock: slow answers, not a slow server
        with self.lock:
            if decision.kind == ERROR_BEFORE:
                response = self.server_error(decision.status)
            elif decision.kind == RATE_LIMIT:
                response = self.rate_limited(req)
            else:
                try:
                    response = found.handler(req, **params)
                except BadRequestBody as exc:
                    response = self.bad_body(str(exc))
                except Exception:
                    traceback.print_exc(file=sys.stderr)
                    response = self.server_error(500)
            if req.method != "GET":
                self._changed()
            if decision.kind:
                self._faults_injected[decision.kind] += 1
            if decision.kind == APPLIED_BUT_LOST:
                self._record(req, found.name, response, lost=True)
                return DROP
        return self._record(req, found.name, response)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def _match(self, req: Request) -> tuple[Route, dict[str, str]] | Response:
        allowed = []
        for candidate in self.routes:
            match = candidate.pattern.match(req.path)
            if match:
                if candidate.method == req.method:
                    return candidate, match.groupdict()
                allowed.append(candidate.method)
        return self.not_found(req, allowed)

    def _reset_counters(self) -> None:
        self._total = 0
        self._by_route: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_route_status: dict[str, Counter[str]] = {}
        self._faults_injected: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=self.LOG_SIZE)

    def _record(self, req: Request, route_name: str, response: Response, *, lost: bool = False) -> Response:
        with self.lock:
            self._total += 1
            self._by_route[route_name] += 1
            self._by_status[response.status] += 1
            self._by_route_status.setdefault(route_name, Counter())[str(response.status)] += 1
            entry = {"t": round(self.now(), 4), "method": req.method, "path": req.path, "route": route_name}
            self._log.append({**entry, "status": response.status, "lost": lost})
        return response

    # --- the control API ---------------------------------------------------------------------------------

    def _control(self, req: Request) -> Response:
        action = req.path[len(CONTROL_PREFIX) :].strip("/")
        try:
            body = req.json() if req.body.strip() else {}
            if action == "state" and req.method == "GET":
                return json_response(200, self.state(include_log=req.arg("log") in ("1", "true")))
            if action == "reset" and req.method == "POST":
                self.reset()
            elif action == "seed" and req.method == "POST":
                self.load_seed(body)
            elif action == "faults" and req.method == "GET":
                return json_response(200, self.faults.describe())
            elif action == "faults" and req.method == "POST":
                self.set_faults(body.get("rules", []), seed=body.get("seed"), append=bool(body.get("append")))
                return json_response(200, self.faults.describe())
            elif action == "faults" and req.method == "DELETE":
                self.faults.clear()
            elif action == "config" and req.method == "GET":
                return json_response(200, self.config)
            elif action == "config" and req.method == "POST":
                self.configure(**body)
                return json_response(200, self.config)
            elif action == "clock" and req.method == "POST":
                self.advance_clock(float(body.get("advance", 0)))
                return json_response(200, {"now": self.now(), "offset": self.clock_offset})
            else:
                extra = self.control_action(action, req.method, body)
                if extra is None:
                    return json_response(404, {"error": f"no control action {req.method} {action!r}"})
                return extra
        except (BadRequestBody, FaultConfigError, TypeError, ValueError, AttributeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {"ok": True})

    # --- hooks for subclasses -----------------------------------------------------------------------------

    def build_routes(self) -> list[Route]:
        raise NotImplementedError

    def reset_state(self, seed: Mapping[str, Any]) -> None:
        """Throw away every entity and rebuild from `seed` (called under the lock)."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """The entities tests assert on, JSON-ready (called under the lock)."""
        raise NotImplementedError

    def export_state(self) -> dict[str, Any]:
        """What a restart must keep, JSON-ready: the data written through the API and the id generators'
        positions (called under the lock)."""
        raise NotImplementedError

    def import_state(self, saved: Mapping[str, Any]) -> None:
        """Take back what `export_state` gave, over the seeded data (called under the lock)."""
        raise NotImplementedError

    def page(self, req: Request) -> Response | None:
        """A page for people (e.g. a deal as a salesperson sees it): served before the API's auth, limits
        and faults, and not counted. None = not a page."""
        return None

    def gate(self, req: Request, found: Route) -> Response | None:
        """Auth, rate limits, blocks: a Response refuses the request before any fault or handler."""
        return None

    def on_configure(self) -> None:
        """Settings changed at runtime (e.g. a new rate limit)."""

    def control_action(self, action: str, method: str, body: Any) -> Response | None:
        return None

    def server_error(self, status: int) -> Response:
        return json_response(status, {"error": "internal error"})

    def rate_limited(self, req: Request) -> Response:
        return json_response(429, {"error": "too many requests"})

    def bad_body(self, message: str) -> Response:
        return json_response(400, {"error": message})

    def not_found(self, req: Request, allowed: list[str]) -> Response:
        return json_response(405 if allowed else 404, {"error": f"Cannot {req.method} {req.path}"})

    # --- command line -----------------------------------------------------------------------------------------

    @classmethod
    def main(cls, argv: list[str] | None = None) -> None:
        """``python -m sandbox.<api>_emulator --port 0 --seed-file seed.json``: prints its URL, serves until killed."""
        parser = argparse.ArgumentParser(prog=f"python -m sandbox.{cls.name}_emulator", description=cls.__doc__)
        parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
        parser.add_argument("--seed-file", type=Path, help="JSON file with the initial data")
        parser.add_argument("--fault-seed", type=int, help="seed of the fault-injection RNG (reproducible chaos)")
        parser.add_argument("--faults-file", type=Path, help='JSON {"rules": [...]} of faults active from the start')
        parser.add_argument("--url-file", type=Path, help="also write the URL to this file once listening")
        parser.add_argument(
            "--set", action="append", default=[], metavar="NAME=JSON", help=f"a setting: {sorted(cls.DEFAULT_CONFIG)}"
        )
        args = parser.parse_args(argv)
        config = {}
        for item in args.set:
            name, _, value = item.partition("=")
            config[name] = json.loads(value)
        seed = json.loads(args.seed_file.read_text()) if args.seed_file else None
        emulator = cls(host=args.host, port=args.port, seed=seed, fault_seed=args.fault_seed, **config)
        if args.faults_file:
            emulator.set_faults(json.loads(args.faults_file.read_text())["rules"])
        url = emulator.start()
        print(url, flush=True)
        if args.url_file:
            args.url_file.write_text(url + "\n")
        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        stopped.wait()
        emulator.stop()
