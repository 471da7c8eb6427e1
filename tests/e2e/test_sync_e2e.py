"""calsync with every real process: gunicorn, qcluster, PostgreSQL and both emulators (docs/sandbox.md).

One stack serves the whole module; each test books for its own Kommo contacts, waits until every event
is done, then asserts the emulators' final state exactly and the requests its scenario cost (counted as
the difference of the emulators' request counters before and after, so tests do not see each other's).
The first booking warms the shared caches (Kommo users, Zoom token and host lookup) in the fixture.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sandbox import calendly_sender as cs
from sandbox.demo import DEMO_HOST_EMAIL, DEMO_INVITEE_EMAIL, DEMO_INVITEE_NAME, DEMO_OPEN_DEAL_ID
from tests.e2e.conftest import Run
from tests.e2e.harness import wait_for
from tests.e2e.world import (
    agenda_marker,
    crm_seed,
    meetings_by_topic,
    note_kinds,
    notes_by_lead,
    people,
    result_text,
    tasks_by_lead,
    ts,
    zoom_accounts,
    zoom_start,
)

PEOPLE = people(12, prefix="e2e")
KOMMO_USER_MARTA = 504141  # the demo host, a Kommo user: she gets the tasks
NOTES = "POST /api/v4/leads/{lead_id}/notes"
TASKS = "POST /api/v4/tasks"
TASK_PATCH = "PATCH /api/v4/tasks/{task_id}"
CONTACTS = "GET /api/v4/contacts"
LEADS = "GET /api/v4/leads"
USERS = "GET /api/v4/users"
Z_CREATE = "POST /v2/users/{user_id}/meetings"
Z_PATCH = "PATCH /v2/meetings/{meeting_id}"
Z_DELETE = "DELETE /v2/meetings/{meeting_id}"
Z_TOKEN = "POST /oauth/token"
Z_USER = "GET /v2/users/{user_id}"


class World:
    """The module's running system and the bookkeeping the tests share."""

    def __init__(self, run: Run):
        self.run = run
        self.emulators = run.emulators(kommo_seed=crm_seed(PEOPLE), zoom_seed=zoom_accounts())
        self.stack = run.stack(workers=1, extra_env=self.emulators.env())
        self.events = 0
        self.base = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0) + timedelta(days=2)

    def send(self, *deliveries: dict, expect_new: int | None = None) -> Counter[str]:
        """Post the deliveries in order, wait until all events are done; the requests they cost."""
        before = self.emulators.counts()
        new = 0
        for delivery in deliveries:
            status, answer = self.stack.post(cs.encode(delivery))
            assert status in (200, 202), (status, answer)
            new += status == 202
        if expect_new is not None:
            assert new == expect_new
        self.events += new
        self.stack.wait_until_settled(self.events, timeout=60)
        return self.emulators.counts() - before

    def kommo(self) -> dict:
        return self.emulators.state("kommo")

    def zoom(self) -> dict:
        return self.emulators.state("zoom")

    def booking(self, person_index: int | None = None, *, day: int = 0, **fields) -> cs.Booking:
        if person_index is None:
            email, name = DEMO_INVITEE_EMAIL, DEMO_INVITEE_NAME
        else:
            email, name = PEOPLE[person_index].email, PEOPLE[person_index].name
        return cs.booking(email=email, name=name, start=self.base + timedelta(days=day), **fields)


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    run = Run(pg_server, tmp_path_factory.mktemp("sync-e2e"))
    failed = True
    try:
        w = World(run)
        # Warm-up: a cold start costs the user list (Kommo) and a token + host lookup (Zoom) once.
        w.warmup = w.send(cs.created(w.booking(11, day=30)), expect_new=1)
        failed = False
        yield w
    finally:
        run.close(failed=failed)


@pytest.fixture(autouse=True)
def _logs_on_failure(request):
    yield
    if getattr(getattr(request.node, "rep_call", None), "failed", False) and "world" in request.fixturenames:
        print(request.getfixturevalue("world").run.logs())


def only_meeting(zoom: dict, topic: str) -> dict:
    found = meetings_by_topic(zoom).get(topic, [])
    assert len(found) == 1, (topic, found)
    return found[0]


def test_cold_caches_cost_one_user_list_one_token_and_one_host_lookup(world):
    assert world.warmup == Counter(
        {CONTACTS: 1, LEADS: 1, USERS: 1, NOTES: 1, TASKS: 1, Z_TOKEN: 1, Z_USER: 1, Z_CREATE: 1}
    )


def test_booking_lands_as_one_note_one_task_one_meeting(world):
    b = world.booking(day=0)
    cost = world.send(cs.created(b), expect_new=1)
    # Four Kommo requests (search, deals, note, task) and one Zoom create: the documented cost.
    assert cost == Counter({CONTACTS: 1, LEADS: 1, NOTES: 1, TASKS: 1, Z_CREATE: 1})

    meeting = only_meeting(world.zoom(), f"30-min Product Demo with {DEMO_INVITEE_NAME}")
    assert meeting["start_time"] == zoom_start(b.start)
    assert meeting["duration"] == 30
    assert meeting["host_email"] == DEMO_HOST_EMAIL
    assert agenda_marker(meeting) == f"calsync:{b.invitee_uuid}"

    kommo = world.kommo()
    notes = notes_by_lead(kommo)
    (note,) = notes[DEMO_OPEN_DEAL_ID]
    assert note_kinds([note]) == Counter({"booked": 1})
    assert "Calendly: meeting booked" in note
    assert f"Invitee: {DEMO_INVITEE_NAME} <{DEMO_INVITEE_EMAIL}>" in note
    assert f"Join: {meeting['join_url']}" in note
    assert "Pricing for 25 seats" in note  # the form's answer
    # The contact who only mentions her address in a comment is not matched (EMAIL field filter).
    assert 18734777 not in notes and 18734400 not in notes  # nor her won deal
    (task,) = tasks_by_lead(kommo)[DEMO_OPEN_DEAL_ID]
    assert task["complete_till"] == ts(b.start)
    assert task["duration"] == 30 * 60
    assert task["is_completed"] is False
    assert task["responsible_user_id"] == KOMMO_USER_MARTA
    assert task["task_type_id"] == 2


def test_cancel_completes_the_task_and_deletes_the_meeting(world):
    b = world.booking(0, day=1)
    world.send(cs.created(b), expect_new=1)
    meeting = only_meeting(world.zoom(), f"30-min Product Demo with {b.name}")
    cost = world.send(cs.canceled(b, reason="Budget frozen"), expect_new=1)
    assert cost == Counter({NOTES: 1, TASK_PATCH: 1, Z_DELETE: 1})

    kommo, zoom = world.kommo(), world.zoom()
    lead = PEOPLE[0].lead_id
    booked, canceled = notes_by_lead(kommo)[lead]
    assert note_kinds([booked, canceled]) == Counter({"booked": 1, "canceled": 1})
    assert f"Join: {meeting['join_url']}" in booked
    assert "Cancelled by: Marta Ruiz (host)" in canceled and "Reason: Budget frozen" in canceled
    (task,) = tasks_by_lead(kommo)[lead]
    assert task["is_completed"] is True and task["complete_till"] == ts(b.start)
    assert "Cancelled in Calendly by Marta Ruiz: Budget frozen" in result_text(task)
    assert f"30-min Product Demo with {b.name}" not in meetings_by_topic(zoom)
    (gone,) = meetings_by_topic(zoom, deleted=True)[f"30-min Product Demo with {b.name}"]
    assert gone["id"] == meeting["id"]


@pytest.mark.parametrize("order", ["old_half_first", "new_half_first"])
def test_reschedule_moves_task_and_meeting_in_either_order(world, order):
    person = 1 if order == "old_half_first" else 2
    old = world.booking(person, day=2)
    world.send(cs.created(old), expect_new=1)
    meeting = only_meeting(world.zoom(), f"30-min Product Demo with {old.name}")
    new, old_half, new_half = cs.reschedule(old, old.start + timedelta(days=1, hours=2))
    halves = (old_half, new_half) if order == "old_half_first" else (new_half, old_half)
    cost = world.send(*halves, expect_new=2)
    # The same task moved (PATCH) and the same meeting moved (PATCH): nothing new created, nothing deleted.
    assert cost == Counter({NOTES: 1, TASK_PATCH: 1, Z_PATCH: 1})

    kommo, zoom = world.kommo(), world.zoom()
    lead = PEOPLE[person].lead_id
    booked, moved = notes_by_lead(kommo)[lead]
    assert note_kinds([booked, moved]) == Counter({"booked": 1, "rescheduled": 1})
    assert "Calendly: meeting moved" in moved
    old_local, new_local = (m.astimezone(ZoneInfo("Europe/Madrid")) for m in (old.start, new.start))
    assert f"From: {old_local:%A, %-d %B %Y, %H:%M}" in moved
    assert f"To:   {new_local:%A, %-d %B %Y, %H:%M}" in moved
    assert f"Join: {meeting['join_url']}" in moved  # the same link: the meeting was moved, not replaced
    (task,) = tasks_by_lead(kommo)[lead]
    assert task["complete_till"] == ts(new.start) and task["is_completed"] is False
    moved_meeting = only_meeting(zoom, f"30-min Product Demo with {old.name}")
    assert moved_meeting["id"] == meeting["id"] and moved_meeting["join_url"] == meeting["join_url"]
    assert moved_meeting["start_time"] == zoom_start(new.start)
    assert f"30-min Product Demo with {old.name}" not in meetings_by_topic(zoom, deleted=True)


def test_cancel_before_create_makes_no_meeting(world):
    b = world.booking(3, day=3)
    cost = world.send(cs.canceled(b, canceler_type="invitee", reason="Found another slot"), expect_new=1)
    # The deal still learns of the meeting and its cancellation; Zoom is never called.
    assert cost == Counter({CONTACTS: 1, LEADS: 1, NOTES: 2, TASKS: 1, TASK_PATCH: 1})
    assert world.send(cs.created(b), expect_new=1) == Counter()  # the late create changes nothing

    kommo = world.kommo()
    lead = PEOPLE[3].lead_id
    booked, canceled = notes_by_lead(kommo)[lead]
    assert note_kinds([booked, canceled]) == Counter({"booked": 1, "canceled": 1})
    assert "Join:" not in booked
    assert f"Cancelled by: {b.name} (invitee)" in canceled and "Found another slot" in canceled
    (task,) = tasks_by_lead(kommo)[lead]
    assert task["is_completed"] is True
    zoom = world.zoom()
    topic = f"30-min Product Demo with {b.name}"
    assert topic not in meetings_by_topic(zoom) and topic not in meetings_by_topic(zoom, deleted=True)


def test_group_event_shares_one_meeting_until_the_last_invitee_cancels(world):
    base = world.booking(4, day=4)
    ana, ben = cs.group(base, [(PEOPLE[4].email, PEOPLE[4].name), (PEOPLE[5].email, PEOPLE[5].name)])
    assert world.send(cs.created(ana), expect_new=1)[Z_CREATE] == 1
    cost = world.send(cs.created(ben), expect_new=1)
    assert cost == Counter({CONTACTS: 1, LEADS: 1, NOTES: 1, TASKS: 1})  # Ben joins Ana's meeting: no Zoom call
    meeting = only_meeting(world.zoom(), f"30-min Product Demo with {ana.name}")
    assert meeting["start_time"] == zoom_start(base.start)
    kommo = world.kommo()
    for person in (PEOPLE[4], PEOPLE[5]):
        (note,) = notes_by_lead(kommo)[person.lead_id]
        assert f"Join: {meeting['join_url']}" in note and f"Invitee: {person.name} <{person.email}>" in note
        (task,) = tasks_by_lead(kommo)[person.lead_id]
        assert task["complete_till"] == ts(base.start) and task["is_completed"] is False

    cost = world.send(cs.canceled(ana, still_active=1), expect_new=1)
    assert cost == Counter({NOTES: 1, TASK_PATCH: 1})  # Ben still meets there: the meeting stays
    assert only_meeting(world.zoom(), f"30-min Product Demo with {ana.name}")["id"] == meeting["id"]
    cost = world.send(cs.canceled(ben), expect_new=1)
    assert cost == Counter({NOTES: 1, TASK_PATCH: 1, Z_DELETE: 1})
    zoom, kommo = world.zoom(), world.kommo()
    assert [m["id"] for m in zoom["deleted_meetings"] if m["id"] == meeting["id"]] == [meeting["id"]]
    assert not [m for m in zoom["meetings"] if m["id"] == meeting["id"]]
    for person in (PEOPLE[4], PEOPLE[5]):
        assert note_kinds(notes_by_lead(kommo)[person.lead_id]) == Counter({"booked": 1, "canceled": 1})
        assert [t["is_completed"] for t in tasks_by_lead(kommo)[person.lead_id]] == [True]


def test_duplicate_deliveries_change_nothing(world):
    b = world.booking(6, day=5)
    created, canceled = cs.created(b), cs.canceled(b)
    first = world.send(created, created, created, expect_new=1)
    assert first == Counter({CONTACTS: 1, LEADS: 1, NOTES: 1, TASKS: 1, Z_CREATE: 1})
    assert world.send(created, expect_new=0) == Counter()  # a redelivery after processing
    assert world.send(canceled, canceled, created, expect_new=1) == Counter({NOTES: 1, TASK_PATCH: 1, Z_DELETE: 1})
    kommo = world.kommo()
    assert note_kinds(notes_by_lead(kommo)[PEOPLE[6].lead_id]) == Counter({"booked": 1, "canceled": 1})
    assert len(tasks_by_lead(kommo)[PEOPLE[6].lead_id]) == 1
    deliveries = dict(
        world.stack.query("SELECT kind, deliveries FROM bookings_webhookevent WHERE invitee_uri = %s", b.uri)
    )
    assert deliveries == {"invitee.created": 5, "invitee.canceled": 2}


def test_replay_writes_nothing_new(world):
    b = world.booking(7, day=6)
    world.send(cs.created(b), expect_new=1)
    kommo_before, zoom_before = world.kommo(), world.zoom()
    before = world.emulators.counts()
    (event_id,) = world.stack.query("SELECT id FROM bookings_webhookevent WHERE invitee_uri = %s", b.uri)[0]
    assert "queued" in world.stack.manage("replay_event", str(event_id))
    wait_for(
        lambda: (
            world.stack.query("SELECT status, attempts FROM bookings_webhookevent WHERE id = %s", event_id)
            == [("done", 2)]
        ),
        timeout=30,
        what="the replayed event done again",
    )
    assert "done" in world.stack.manage("replay_event", str(event_id), "--inline")
    assert world.emulators.counts() - before == Counter()
    kommo_after, zoom_after = world.kommo(), world.zoom()
    assert kommo_after["notes"] == kommo_before["notes"] and kommo_after["tasks"] == kommo_before["tasks"]
    assert zoom_after["meetings"] == zoom_before["meetings"]
    steps = world.stack.query(
        "SELECT steps FROM bookings_processingattempt WHERE event_id = %s ORDER BY number", event_id
    )
    assert len(steps) == 3
    last = steps[-1][0]
    assert [s["detail"] for s in last if s["step"] != "booking"] == ["up to date", "up to date"]


def test_the_module_left_no_ghosts(world):
    """Across every scenario above: each live meeting belongs to a live booking, and vice versa."""
    rows = world.stack.query("SELECT invitee_name, event_uri FROM bookings_booking WHERE status = 'scheduled'")
    live_events = {event for _, event in rows}
    zoom = world.zoom()
    live_topics = Counter(m["topic"] for m in zoom["meetings"])
    assert all(n == 1 for n in live_topics.values()), live_topics
    assert len(zoom["meetings"]) == len(live_events)
    meeting_rows = world.stack.query("SELECT meeting_id, event_uri FROM conferencing_zoommeeting WHERE status = 'live'")
    assert {m["id"] for m in zoom["meetings"]} == {mid for mid, _ in meeting_rows}
    assert {event for _, event in meeting_rows} == live_events
