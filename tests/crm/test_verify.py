"""Verification of Meeting tasks against Kommo's live state (crm.verify via bookings.verification)."""

import copy
from datetime import timedelta

import pytest
import responses
from django.core import mail
from responses import matchers

from bookings.admin import booking_timeline
from bookings.models import Booking, SyncDrift
from bookings.verification import live_bookings, resync, verify
from calsync.models import Alert
from crm.client import kommo_client
from crm.models import KommoLink, RateLimitState
from crm.ratelimit import SharedRateLimiter
from crm.verify import LowPriorityLimiter, VerificationYielded, check
from ops.alerts import send_alert_digest
from ops.metrics import render_metrics
from tests.crm.conftest import kommo, sent
from tests.crm.test_sync import START, TASKS, book_lucia, expect_note, expect_task, methods

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def only_kommo(settings):
    settings.CALSYNC_VERIFIERS = ["crm.verify"]


def live_task(**changes) -> dict:
    body = copy.deepcopy(kommo("tasks_list.json"))
    body["_embedded"]["tasks"][0].update({"complete_till": START, **changes})
    return body


def expect_tasks_read(rsps, body=None, ids=(4745251,)):
    wanted = [str(i) for i in ids]
    match = [matchers.query_param_matcher({"filter[id][]": wanted[0] if len(wanted) == 1 else wanted, "limit": "250"})]
    if body is None:
        rsps.get(TASKS, status=204, match=match)
    else:
        rsps.get(TASKS, json=body, match=match)


def test_a_task_in_place_costs_one_request_and_finds_nothing(rsps):
    book_lucia(rsps)
    expect_tasks_read(rsps, live_task())
    report = verify(live_bookings(14))
    assert report.checked == 1 and report.findings == []
    assert SyncDrift.objects.count() == 0


def test_a_task_deleted_by_hand_is_created_again_with_a_note(rsps):
    book_lucia(rsps)
    start = len(rsps.calls)
    expect_tasks_read(rsps)  # 204: Kommo no longer has it
    expect_note(rsps, note_id=76790000)
    expect_task(rsps, task_id=4745999)
    report = verify(live_bookings(14))
    assert report.repaired == 1, report.summary()
    assert methods(rsps, start) == [
        ("GET", "/api/v4/tasks"),
        ("POST", "/api/v4/leads/9785993/notes"),
        ("POST", "/api/v4/tasks"),
    ]
    [note] = sent(rsps.calls[start + 1])
    assert "the meeting task was deleted in Kommo" in note["params"]["text"]
    [task] = sent(rsps.calls[start + 2])
    assert task["complete_till"] == START and task["entity_id"] == 9785993
    link = KommoLink.objects.get()
    assert link.task_id == 4745999 and link.task_state["complete_till"] == START
    drift = SyncDrift.objects.get()
    assert (drift.service, drift.kind, drift.outcome) == ("kommo", "task_deleted", "repaired")
    # The timeline says so, /metrics counts it and the digest raises it.
    booking = Booking.objects.get()
    assert any("task_deleted" not in what and "deleted in Kommo" in what for _, what in booking_timeline(booking))
    assert 'calsync_drift_total{kind="task_deleted",service="kommo"} 1.0' in render_metrics().decode()
    assert Alert.objects.filter(kind="drift").count() == 1


def test_the_restored_task_is_then_in_place(rsps):
    test_a_task_deleted_by_hand_is_created_again_with_a_note(rsps)
    expect_tasks_read(rsps, live_task(id=4745999), ids=(4745999,))
    assert verify(live_bookings(14)).findings == []
    assert SyncDrift.objects.count() == 1


def test_a_task_completed_by_hand_is_left_alone(rsps):
    book_lucia(rsps)
    start = len(rsps.calls)
    expect_tasks_read(rsps, live_task(is_completed=True))
    report = verify(live_bookings(14))
    assert report.left_alone == 1 and len(rsps.calls) == start + 1  # no second task, no note
    assert KommoLink.objects.get().task_state["completed"] is True
    assert SyncDrift.objects.get().outcome == "left_alone"
    assert not Alert.objects.exists()  # a person's decision is not an alert
    assert verify(live_bookings(14)).findings == []  # and not checked again: nothing to read


def test_a_task_moved_by_hand_is_raised_not_moved_back(rsps, settings):
    settings.CALSYNC_ALERT_EMAILS = ["ops@acme-sales.example"]
    book_lucia(rsps)
    start = len(rsps.calls)
    moved = START + 3600
    expect_tasks_read(rsps, live_task(complete_till=moved))
    report = verify(live_bookings(14))
    assert report.raised == 1 and len(rsps.calls) == start + 1  # no PATCH
    drift = SyncDrift.objects.get()
    assert (drift.kind, drift.outcome) == ("task_moved", "raised")
    assert "moved by hand to 2026-12-02 16:00 UTC" in drift.detail
    # Found again on the next run: still one line, one alert.
    expect_tasks_read(rsps, live_task(complete_till=moved))
    verify(live_bookings(14))
    assert SyncDrift.objects.count() == 1 and Alert.objects.count() == 1
    assert send_alert_digest().sent
    assert "changed by hand" in mail.outbox[0].body and "task_moved" in mail.outbox[0].body


def test_a_task_moved_to_another_deal_is_raised(rsps):
    book_lucia(rsps)
    expect_tasks_read(rsps, live_task(entity_id=111))
    report = verify(live_bookings(14))
    assert report.raised == 1
    assert SyncDrift.objects.get().kind == "task_other_deal"


def test_dry_run_reports_and_changes_nothing(rsps):
    book_lucia(rsps)
    start = len(rsps.calls)
    expect_tasks_read(rsps)
    report = verify(live_bookings(14), dry_run=True)
    assert [f.kind for f in report.findings] == ["task_deleted"] and len(rsps.calls) == start + 1
    assert KommoLink.objects.get().task_id == 4745251 and not SyncDrift.objects.exists()


def test_sync_again_checks_the_live_task_first(rsps):
    book_lucia(rsps)
    start = len(rsps.calls)
    expect_tasks_read(rsps)
    expect_note(rsps, note_id=76790000)
    expect_task(rsps, task_id=4745999)
    result = resync(Booking.objects.get(), inline=True)
    assert result.outcome == "done"
    assert [m for m, _ in methods(rsps, start)] == ["GET", "POST", "POST"]  # the replay itself wrote nothing
    assert SyncDrift.objects.get().source == "resync"


def test_a_booking_outside_the_window_is_not_checked(rsps, test_clock):
    book_lucia(rsps)
    assert live_bookings(3) == []  # it starts 8 days after the test clock
    test_clock.shift(timedelta(days=9))
    assert live_bookings(14) == []  # started: no longer checked


def test_tasks_are_read_250_per_request(rsps):
    bookings, links = [], []
    for i in range(300):
        b = Booking.objects.create(
            invitee_uri=f"https://api.calendly.com/scheduled_events/E{i}/invitees/I{i}",
            event_uri=f"https://api.calendly.com/scheduled_events/E{i}",
            start_at=live_start(i),
            end_at=live_start(i) + timedelta(minutes=30),
            invitee_name="X",
            invitee_email="x@example.com",
        )
        bookings.append(b)
        state = {"complete_till": int(b.start_at.timestamp())}
        links.append(KommoLink(booking=b, marker="m", lead_id=1, task_id=1000 + i, task_state=state))
    KommoLink.objects.bulk_create(links)
    rsps.get(TASKS, status=204)
    rsps.get(TASKS, status=204)
    findings = check(bookings, client=kommo_client(sleep=lambda s: None))
    assert len(findings) == 300 and len(rsps.calls) == 2
    sizes = [c.request.url.count("filter%5Bid%5D%5B%5D=") for c in rsps.calls]
    assert sizes == [250, 50]


def live_start(i: int):
    from tests.conftest import TEST_NOW

    return TEST_NOW + timedelta(days=1, minutes=i)


# --- low priority on the shared Kommo budget --------------------------------------------------------


class Clock:
    def __init__(self):
        self.t = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_the_verifier_steps_aside_while_webhook_work_waits():
    clock = Clock()
    shared = SharedRateLimiter("kommo", 7, clock=clock, sleep=clock.sleep)
    limiter = LowPriorityLimiter(shared, waiting=lambda: True, max_yield=5, poll=0.25, sleep=clock.sleep, clock=clock)
    with pytest.raises(VerificationYielded):
        limiter.acquire()
    assert sum(clock.slept) == pytest.approx(5.0)
    assert RateLimitState.objects.filter(name="kommo", next_free_us__gt=0).count() == 0  # took no slot


def test_the_verifier_never_queues_in_front_of_a_webhook_request():
    clock = Clock()
    shared = SharedRateLimiter("kommo", 7, clock=clock, sleep=clock.sleep)
    for _ in range(8):  # a webhook burst took this second's 7 slots and holds the first of the next
        shared.acquire()
    queued = shared.last_slot
    limiter = LowPriorityLimiter(shared, waiting=lambda: False, poll=0.05, sleep=clock.sleep, clock=clock)
    clock.t -= 1.0  # back to the moment the eighth request went to sleep until its slot
    limiter.acquire()
    assert clock.t >= queued  # it waited until the queued request had gone, never took a slot ahead of it
    rows = RateLimitState.objects.filter(name__startswith="kommo").values_list("next_free_us", flat=True)
    assert int(clock.t * 1_000_000) + shared.window_us in rows


def test_webhook_work_waiting_sees_queued_and_due_events(rsps):
    from bookings.models import WebhookEvent
    from crm.verify import webhook_work_waiting

    assert not webhook_work_waiting()
    WebhookEvent.objects.create(kind="invitee.created", raw_body=b"{}", status=WebhookEvent.Status.RECEIVED)
    assert webhook_work_waiting()


def test_the_verifier_client_uses_the_low_priority_limiter(settings):
    from crm.verify import verifier_client

    assert isinstance(verifier_client().rate_limiter, LowPriorityLimiter)
    _ = responses  # wire mocks come from the rsps fixture in the other tests


def test_the_schedule_follows_its_setting_and_can_be_turned_off(settings):
    from django_q.models import Schedule

    from bookings.tasks import VERIFY_SCHEDULE, verify_live_bookings

    assert Schedule.objects.get(name=VERIFY_SCHEDULE).minutes == 30  # made by the data migration
    settings.CALSYNC_VERIFY_MINUTES = 0
    assert verify_live_bookings().startswith("skipped")
    settings.CALSYNC_VERIFY_MINUTES = 15
    assert verify_live_bookings().startswith("checked 0 live booking(s)")
    assert Schedule.objects.get(name=VERIFY_SCHEDULE).minutes == 15


def test_an_ended_booking_is_not_verified(rsps, test_clock):
    book_lucia(rsps)
    booking = Booking.objects.get()
    test_clock.move_to(booking.end_at + timedelta(minutes=1))
    assert verify([booking]).checked == 0  # resync of an old booking recreates nothing
