"""Emulator data kept across restarts, in one JSON file (the sandbox uses var/emulators.json).

calsync's database remembers the Zoom meeting ids and the Kommo note and task ids the emulators handed out.
An emulator that forgot them on restart would hand out the same ids again (its generators are seeded), and
calsync would refuse the "new" meeting as a duplicate. So the file holds what was written through the API
and where each id generator stands; it is rewritten atomically after every request that may change data,
and read back at start over the seed (the seed still adds entities it has and the file does not).

Stdlib only, like the emulators.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.emulator import Emulator
    from sandbox.kommo_state import KommoState
    from sandbox.zoom_emulator import ZoomEmulator

FORMAT = 1
KOMMO_TABLES = ("contacts", "leads", "notes", "tasks")


class BrokenStateFile(ValueError):
    """The file exists but cannot be read back."""


# --- Kommo ---------------------------------------------------------------------------------------------


def export_kommo(data: KommoState) -> dict[str, Any]:
    tables = {name: list(getattr(data, name).values()) for name in KOMMO_TABLES}
    return {**tables, "unsorted": list(data.unsorted.values()), "next_id": data.next_id}


def import_kommo(data: KommoState, saved: Mapping[str, Any]) -> None:
    for name in KOMMO_TABLES:
        table = getattr(data, name)
        for item in saved.get(name) or []:
            table[int(item["id"])] = dict(item)
    for record in saved.get("unsorted") or []:
        data.unsorted[str(record["uid"])] = dict(record)
    data.next_id = max(data.next_id, int(saved.get("next_id") or 0))


# --- Zoom ------------------------------------------------------------------------------------------------


def export_zoom(zoom: ZoomEmulator) -> dict[str, Any]:
    version, internal, gauss = zoom.id_rng.getstate()
    return {
        "meetings": list(zoom.meetings.values()),
        "deleted_meetings": list(zoom.deleted.values()),
        "daily_counts": dict(zoom.daily),
        "tokens": dict(zoom.tokens),
        "tokens_issued": zoom.tokens_issued,
        "issued_ids": sorted(zoom.issued_ids),
        "id_rng": [version, list(internal), gauss],
    }


def import_zoom(zoom: ZoomEmulator, saved: Mapping[str, Any]) -> None:
    zoom.meetings.update({int(m["id"]): dict(m) for m in saved.get("meetings") or []})
    zoom.deleted.update({int(m["id"]): dict(m) for m in saved.get("deleted_meetings") or []})
    zoom.daily.update(saved.get("daily_counts") or {})
    zoom.tokens.update({str(k): float(v) for k, v in (saved.get("tokens") or {}).items()})
    zoom.tokens_issued += int(saved.get("tokens_issued") or 0)
    zoom.issued_ids.update(int(i) for i in saved.get("issued_ids") or [])
    zoom.issued_ids.update(zoom.meetings, zoom.deleted)
    if saved.get("id_rng"):
        version, internal, gauss = saved["id_rng"]
        zoom.id_rng.setstate((version, tuple(internal), gauss))


# --- the file ---------------------------------------------------------------------------------------------


class StateFile:
    """One file for several emulators, one part each (by `Emulator.name`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._parts: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        """The saved parts; {} when there is no file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            saved = json.loads(text)
            if not isinstance(saved, dict) or saved.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} emulator state")
        except ValueError as exc:
            raise BrokenStateFile(
                f"cannot read the emulators' saved state {self.path}: {exc}. Move it away to start from the demo "
                "data, and then also start calsync's database afresh: it holds ids the emulators would hand out again."
            ) from exc
        return dict(saved.get("emulators") or {})

    def attach(self, *emulators: Emulator) -> None:
        """Load each emulator's saved part over its seed, then save after every change it makes."""
        saved = self.read()
        for emulator in emulators:
            with emulator.lock:
                if emulator.name in saved:
                    emulator.import_state(saved[emulator.name])
                self._parts[emulator.name] = emulator.export_state()
                emulator.on_change = self.save
        self._write()

    def save(self, emulator: Emulator) -> None:
        """Called under the emulator's lock, so its parts are written in the order they changed."""
        part = emulator.export_state()
        with self._lock:
            self._parts[emulator.name] = part
            self._write_locked()

    def _write(self) -> None:
        with self._lock:
            self._write_locked()

    def _write_locked(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        body = {"format": FORMAT, "emulators": self._parts}
        partial.write_text(json.dumps(body, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        partial.replace(self.path)  # atomic: a reader sees the old file or the new one, never half of one
