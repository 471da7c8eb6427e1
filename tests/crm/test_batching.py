"""Several waiting bookings synced together: Kommo's deals, notes and tasks in one request each, and a batch
whose answer is lost is settled by the markers like one write, never written twice."""

from datetime import UTC, datetime, timedelta

import pytest

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from crm.models import KommoLink
from sandbox import calendly_sender as cs
from sandbox.demo import KOMMO_TOKEN
from sandbox.kommo_emulator import KommoEmulator
from tests.e2e.world import crm_seed, notes_by_lead, people, tasks_by_lead

pytestmark = pytest.mark.django_db

PERSONS = people(3, prefix="batch")


@pytest.fixture
def kommo(settings):
    with KommoEmulator.running(seed=crm_seed(PERSONS), rps=0, fault_seed=3) as emulator:
        settings.KOMMO_BASE_URL = emulator.url
        settings.KOMMO_ACCESS_TOKEN = KOMMO_TOKEN
        settings.CALSYNC_BATCH_SIZE = 50
        yield emulator


def waiting_events() -> list[int]:
    """Three deliveries stored and queued, none processed yet (a burst)."""
    start = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)
    ids = []
    for n, p in enumerate(PERSONS):
        body = cs.encode(cs.created(cs.booking(email=p.email, name=p.name, start=start + timedelta(hours=n))))
        ids.append(store_delivery(body).event.pk)
    return ids


def routes(kommo) -> dict[str, int]:
    return kommo.state()["requests"]["by_route"]


def test_waiting_bookings_share_the_deal_list_the_notes_request_and_the_tasks_request(kommo):
    ids = waiting_events()
    assert processing.process_event(ids[0]) == "done"
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"done"}  # all three, in one go
    assert routes(kommo) == {
        "GET /api/v4/users": 1,
        "GET /api/v4/contacts": 3,  # one search per e-mail: Kommo's query= takes one term
        "GET /api/v4/leads": 1,
        "POST /api/v4/leads/notes": 1,
        "POST /api/v4/tasks": 1,
    }
    state = kommo.state()
    notes, tasks = notes_by_lead(state), tasks_by_lead(state)
    for p in PERSONS:
        link = KommoLink.objects.get(booking__invitee_email=p.email)
        assert link.lead_id == p.lead_id and not link.pending_writes
        assert len(notes[p.lead_id]) == 1 and len(tasks[p.lead_id]) == 1
        assert len(link.note_ids) == 1 and link.task_id is not None
    # The queue's own tasks for the other two find them done and do nothing.
    assert processing.process_event(ids[1]) == "done"
    assert sum(routes(kommo).values()) == 7


def test_a_batch_whose_answer_is_lost_is_settled_by_the_markers_never_written_twice(kommo):
    kommo.set_faults([{"method": "POST", "path": "/api/v4/leads/notes", "queue": ["applied_but_lost"]}])
    ids = waiting_events()
    assert processing.process_event(ids[0]) == "failed"
    events = WebhookEvent.objects.order_by("pk")
    assert [e.status for e in events] == ["failed"] * 3
    assert all("may have happened" in e.last_error for e in events)
    for link in KommoLink.objects.all():
        assert [k.split(":")[0] for k in link.pending_writes] == ["booked"] and not link.note_ids  # still pending
        assert link.task_id is not None  # the tasks' batch was answered
    assert sum(len(v) for v in notes_by_lead(kommo.state()).values()) == 3  # Kommo wrote them all

    for pk in ids:  # the retries, one by one
        assert processing.process_event(pk, trigger="retry") == "done"
    state = kommo.state()
    for p in PERSONS:
        assert len(notes_by_lead(state)[p.lead_id]) == 1  # adopted by its marker, not written again
        assert len(tasks_by_lead(state)[p.lead_id]) == 1
        link = KommoLink.objects.get(booking__invitee_email=p.email)
        assert not link.pending_writes and len(link.note_ids) == 1
    by_route = routes(kommo)
    assert by_route["POST /api/v4/leads/notes"] == 1 and "POST /api/v4/leads/{lead_id}/notes" not in by_route
    assert Booking.objects.filter(crm_status="matched").count() == 3


def test_a_refused_batch_wrote_nothing_and_is_written_again(kommo):
    kommo.set_faults([{"method": "POST", "path": "/api/v4/tasks", "queue": ["error_before"], "status": 400}])
    ids = waiting_events()
    assert processing.process_event(ids[0]) == "failed"
    assert all(not link.pending_writes and link.task_id is None for link in KommoLink.objects.all())
    for pk in ids:
        assert processing.process_event(pk, trigger="retry") == "done"
    assert [len(v) for v in tasks_by_lead(kommo.state()).values()] == [1, 1, 1]
