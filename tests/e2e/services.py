"""The other real processes of an end-to-end run: both emulators (sandbox/) and a throwaway redis-server.

Each runs as its own process on a free loopback port, its output in the run's log folder, and is killed
(with its process group) when the run ends. The emulators are driven through their control API.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from sandbox.demo import sandbox_env
from tests.e2e.harness import Process, child_env, free_port, wait_for

# Emulated APIs are named by the route keys the emulators count under, e.g. "POST /api/v4/tasks".
KOMMO, ZOOM = "kommo", "zoom"


class Emulators:
    """The Kommo and Zoom emulators as two processes, with their seeds, settings and fault RNG seed."""

    def __init__(
        self,
        log_dir: Path,
        *,
        kommo_seed: dict[str, Any],
        zoom_seed: dict[str, Any],
        fault_seed: int = 1,
        kommo_settings: dict[str, Any] | None = None,
        zoom_settings: dict[str, Any] | None = None,
    ):
        self.log_dir = log_dir
        self.procs: dict[str, Process] = {}
        self.urls: dict[str, str] = {}
        self._spec = {
            KOMMO: (kommo_seed, kommo_settings or {}),
            ZOOM: (zoom_seed, zoom_settings or {}),
        }
        self.fault_seed = fault_seed

    def start(self) -> Emulators:
        url_files = {}
        for name, (seed, settings) in self._spec.items():
            seed_file = self.log_dir / f"{name}-seed.json"
            seed_file.write_text(json.dumps(seed))
            url_files[name] = self.log_dir / f"{name}-url.txt"
            url_files[name].unlink(missing_ok=True)
            args = [sys.executable, "-m", f"sandbox.{name}_emulator", "--port", "0", "--seed-file", str(seed_file)]
            args += ["--url-file", str(url_files[name]), "--fault-seed", str(self.fault_seed)]
            for key, value in settings.items():
                args += ["--set", f"{key}={json.dumps(value)}"]
            self.procs[name] = Process(f"{name}-emulator", args, child_env(), self.log_dir)
        for name, path in url_files.items():
            self.urls[name] = wait_for(
                lambda path=path: path.exists() and path.read_text().strip(), timeout=20, what=f"{name} emulator URL"
            )
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()

    def env(self) -> dict[str, str]:
        """Settings that point calsync at these emulators (as `run_emulators` writes them)."""
        return sandbox_env(self.urls[KOMMO], self.urls[ZOOM])

    # --- the control API -------------------------------------------------------------------------------

    def control(self, name: str, method: str, action: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.urls[name]}/__emulator__/{action}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def state(self, name: str, *, log: bool = False) -> dict[str, Any]:
        return self.control(name, "GET", "state?log=1" if log else "state")

    def set_faults(self, name: str, rules: list[dict[str, Any]], *, seed: int | None = None) -> None:
        self.control(name, "POST", "faults", {"rules": rules, "seed": seed if seed is not None else self.fault_seed})

    def clear_faults(self, name: str) -> None:
        self.control(name, "DELETE", "faults")

    def configure(self, name: str, **settings: Any) -> None:
        self.control(name, "POST", "config", settings)

    def counts(self) -> Counter[str]:
        """Requests so far per route, both emulators together ("POST /api/v4/tasks": n)."""
        total: Counter[str] = Counter()
        for name in self.urls:
            total.update(self.state(name)["requests"]["by_route"])
        return total

    def logs(self) -> str:
        return "\n\n".join(f"--- {p.name} ---\n{p.tail(20)}" for p in self.procs.values())


class RedisServer:
    """Debian's redis-server on a free loopback port, nothing persisted; REDIS_URL for calsync."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.proc: Process | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.log_dir), "--daemonize", "no"]
        self.proc = Process("redis", args, child_env(), self.log_dir)
        wait_for(self._pong, timeout=15, what="redis-server PING")
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
