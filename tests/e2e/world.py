"""The data the end-to-end tests seed into the emulators, and readers that turn the emulators' state into
what the tests assert on: notes and tasks per deal (by calsync's marker), live and deleted meetings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.demo import kommo_seed, zoom_seed

OPEN_STATUS = 49366085  # "Qualified" in the emulator's default pipeline: an open deal
FIRST_CONTACT_ID = 3_200_000
FIRST_LEAD_ID = 19_000_000
MARKER = re.compile(r"\[calsync:(?P<token>[^/\]]+)/(?P<kind>[^\]]+)\]")


@dataclass(frozen=True)
class Person:
    """A Kommo contact with exactly one open deal."""

    email: str
    name: str
    contact_id: int
    lead_id: int


def people(count: int, *, prefix: str = "person", offset: int = 0) -> list[Person]:
    return [
        Person(
            email=f"{prefix}{n}@customers.example",
            name=f"{prefix.title()} Number{n}",
            contact_id=FIRST_CONTACT_ID + offset + n,
            lead_id=FIRST_LEAD_ID + offset + n,
        )
        for n in range(count)
    ]


def crm_seed(persons: list[Person]) -> dict[str, Any]:
    """The sandbox's demo CRM plus one contact with one open deal per person."""
    seed = kommo_seed()
    for p in persons:
        seed["leads"].append({"id": p.lead_id, "name": f"{p.name} — deal", "price": 1000, "status_id": OPEN_STATUS})
        first, _, last = p.name.partition(" ")
        seed["contacts"].append(
            {"id": p.contact_id, "first_name": first, "last_name": last, "emails": [p.email], "lead_ids": [p.lead_id]}
        )
    return seed


def zoom_accounts() -> dict[str, Any]:
    return zoom_seed()


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def zoom_start(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- reading the Kommo emulator ----------------------------------------------------------------------


def note_kind(text: str) -> str:
    """The kind in calsync's marker line: booked, rescheduled, canceled, joinlink (hash dropped), …"""
    found = MARKER.search(text or "")
    if found is None:
        return "(no marker)"
    return found["kind"].split("-", 1)[0]


def notes_by_lead(kommo: dict[str, Any]) -> dict[int, list[str]]:
    """Note texts per deal, oldest first."""
    result: dict[int, list[str]] = {}
    for note in sorted(kommo["notes"], key=lambda n: n["id"]):
        if note.get("entity_type") == "leads":
            result.setdefault(int(note["entity_id"]), []).append(note["params"].get("text", ""))
    return result


def note_kinds(texts: list[str]) -> Counter[str]:
    return Counter(note_kind(t) for t in texts)


def tasks_by_lead(kommo: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    result: dict[int, list[dict[str, Any]]] = {}
    for task in sorted(kommo["tasks"], key=lambda t: t["id"]):
        if task.get("entity_type") == "leads":
            result.setdefault(int(task["entity_id"]), []).append(task)
    return result


def result_text(task: dict[str, Any]) -> str:
    result = task.get("result") or {}
    return result.get("text", "") if isinstance(result, dict) else ""


# --- reading the Zoom emulator ------------------------------------------------------------------------


def meetings_by_topic(zoom: dict[str, Any], *, deleted: bool = False) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for meeting in zoom["deleted_meetings" if deleted else "meetings"]:
        result.setdefault(meeting["topic"], []).append(meeting)
    return result


def agenda_marker(meeting: dict[str, Any]) -> str:
    return (meeting.get("agenda") or "").split("\n", 1)[0]
