"""Verification with every real process: a person deletes the Meeting task in Kommo and the meeting in Zoom;
`manage.py verify_sync` finds both gone, makes them again and tells the deal the new join link."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from sandbox import calendly_sender as cs
from tests.e2e.world import (
    crm_seed,
    meetings_by_topic,
    note_kinds,
    notes_by_lead,
    people,
    tasks_by_lead,
    ts,
    zoom_accounts,
)

PEOPLE = people(1, prefix="verify")


@pytest.fixture
def world(e2e):
    emulators = e2e.emulators(kommo_seed=crm_seed(PEOPLE), zoom_seed=zoom_accounts())
    stack = e2e.stack(workers=1, extra_env=emulators.env())
    return emulators, stack


def test_verify_sync_restores_a_deleted_task_and_meeting_and_tells_the_deal_the_new_link(world):
    emulators, stack = world
    person = PEOPLE[0]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    booking = cs.booking(email=person.email, name=person.name, start=start)
    status, _ = stack.post(cs.encode(cs.created(booking)))
    assert status == 202
    stack.wait_until_settled(1, timeout=60)
    topic = f"30-min Product Demo with {person.name}"
    (meeting,) = meetings_by_topic(emulators.state("zoom"))[topic]
    (task,) = tasks_by_lead(emulators.state("kommo"))[person.lead_id]

    # Nothing drifted yet: the check only reads (one task list, one meeting GET) and changes nothing.
    before = emulators.counts()
    assert "0 drift(s)" in stack.manage("verify_sync", "--days", "14")
    assert emulators.counts() - before == Counter({"GET /api/v4/tasks": 1, "GET /v2/meetings/{meeting_id}": 1})

    # A person deletes both by hand.
    emulators.control("kommo", "POST", "delete_task", {"id": task["id"]})
    emulators.control("zoom", "POST", "delete_meeting", {"id": meeting["id"]})
    assert "task_deleted" in stack.manage("verify_sync", "--dry-run")
    assert person.lead_id not in tasks_by_lead(emulators.state("kommo"))  # a dry run changes nothing

    out = stack.manage("verify_sync", "--days", "14")
    assert "2 repaired" in out, out

    kommo, zoom = emulators.state("kommo"), emulators.state("zoom")
    (new_meeting,) = meetings_by_topic(zoom)[topic]
    assert new_meeting["id"] != meeting["id"] and new_meeting["join_url"] != meeting["join_url"]
    (new_task,) = tasks_by_lead(kommo)[person.lead_id]
    assert new_task["id"] != task["id"] and new_task["complete_till"] == ts(start)
    assert new_task["is_completed"] is False
    notes = notes_by_lead(kommo)[person.lead_id]
    assert note_kinds(notes) == Counter({"booked": 1, "task_restored": 1, "joinlink": 1})
    assert f"Join: {meeting['join_url']}" in notes[0]
    assert f"Join: {new_meeting['join_url']}" in notes[-1]  # the deal is told the new link

    # Repaired for good: the next run finds nothing and writes nothing.
    before = emulators.counts()
    assert "0 drift(s)" in stack.manage("verify_sync")
    assert all(route.startswith("GET ") for route in emulators.counts() - before)
    drifts = stack.query("SELECT service, kind, outcome FROM bookings_syncdrift ORDER BY service")
    assert drifts == [("kommo", "task_deleted", "repaired"), ("zoom", "meeting_deleted", "repaired")]
