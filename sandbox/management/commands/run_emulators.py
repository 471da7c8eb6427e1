"""``manage.py run_emulators``: the Kommo and Zoom emulators on fixed loopback ports, seeded with the demo
CRM, printing the settings that point calsync at them. Stop with Ctrl-C.

    manage.py run_emulators                              # Kommo on :8010, Zoom on :8011
    manage.py run_emulators --env-file var/sandbox.env   # also write the settings for scripts to source
    manage.py run_emulators --state-file var/emulators.json   # keep their data (and id counters) across restarts
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox import demo
from sandbox.kommo_emulator import KommoEmulator
from sandbox.saved_state import BrokenStateFile, StateFile
from sandbox.zoom_emulator import ZoomEmulator


def start_emulators(
    *,
    host: str = "127.0.0.1",
    kommo_port: int = 8010,
    zoom_port: int = 8011,
    kommo_seed: dict | None = None,
    zoom_seed: dict | None = None,
    latency_ms: int = 0,
    state_file: Path | None = None,
) -> tuple[KommoEmulator, ZoomEmulator]:
    """Both emulators started in threads with the demo data (or the given seeds), and with what `state_file`
    saved before when given (they then keep saving to it after every change)."""
    kommo = KommoEmulator(host=host, port=kommo_port, seed=kommo_seed or demo.kommo_seed())
    zoom = ZoomEmulator(host=host, port=zoom_port, seed=zoom_seed or demo.zoom_seed())
    if state_file is not None:
        try:
            StateFile(state_file).attach(kommo, zoom)
        except BrokenStateFile as exc:
            raise CommandError(str(exc)) from exc
    started = []
    try:
        for emulator in (kommo, zoom):
            if latency_ms:
                emulator.set_faults([{"fault": "delay", "delay_ms": latency_ms}])
            emulator.start()
            started.append(emulator)
    except OSError as exc:
        for emulator in started:
            emulator.stop()
        raise CommandError(f"cannot listen on {host} port {emulator.port}: {exc}") from exc
    return kommo, zoom


class Command(BaseCommand):
    help = "Run local Kommo and Zoom emulators with demo data (the newcomer sandbox); print calsync's settings."
    requires_system_checks: list = []  # no database, no webhook: the signing-key warning would only be noise

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
        parser.add_argument("--kommo-port", type=int, default=8010)
        parser.add_argument("--zoom-port", type=int, default=8011)
        parser.add_argument("--kommo-seed", type=Path, help="JSON seed instead of the demo CRM")
        parser.add_argument("--zoom-seed", type=Path, help="JSON seed instead of the demo Zoom account")
        parser.add_argument("--latency-ms", type=int, default=0, help="emulated latency on every API call")
        parser.add_argument("--env-file", type=Path, help="write the KEY=value settings to this file too")
        parser.add_argument(
            "--state-file", type=Path, help="keep the emulators' data in this JSON file across restarts"
        )

    def handle(self, *args, **options) -> None:
        kommo, zoom = start_emulators(
            host=options["host"],
            kommo_port=options["kommo_port"],
            zoom_port=options["zoom_port"],
            kommo_seed=json.loads(options["kommo_seed"].read_text()) if options["kommo_seed"] else None,
            zoom_seed=json.loads(options["zoom_seed"].read_text()) if options["zoom_seed"] else None,
            latency_ms=options["latency_ms"],
            state_file=options["state_file"],
        )
        env = {**demo.sandbox_env(kommo.url, zoom.url), **demo.sandbox_policies(os.environ)}
        lines = [f"{name}={value}" for name, value in env.items()]
        if options["env_file"]:
            # Written only once both are listening, and atomically: a script that waits for the file to
            # appear can source it at once.
            path = options["env_file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            header = "# Written by manage.py run_emulators: a SANDBOX, not real Kommo/Zoom.\n"
            partial.write_text(header + "\n".join(lines) + "\n")
            partial.replace(path)
        self.stdout.write(self.style.WARNING("== SANDBOX: local Kommo and Zoom emulators, not the real services"))
        self.stdout.write(f"   Kommo emulator {kommo.url}   (state: {kommo.url}/__emulator__/state)")
        self.stdout.write(f"   Zoom emulator  {zoom.url}   (state: {zoom.url}/__emulator__/state)")
        self.stdout.write(f"   demo contact {demo.DEMO_INVITEE_EMAIL}, open deal {demo.DEMO_OPEN_DEAL_ID}")
        if options["state_file"]:
            self.stdout.write(f"   their data is kept in {options['state_file']} across restarts")
        self.stdout.write("   point calsync at them with these settings (environment or .env):")
        for line in lines:
            self.stdout.write(f"{line}")
        self.stdout.flush()
        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        stopped.wait()
        kommo.stop()
        zoom.stop()
