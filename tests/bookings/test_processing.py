"""Pipeline, retries with backoff, the booking lease, the sweeper (crash recovery) and replay."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from bookings import processing, steps
from bookings.intake import store_delivery
from bookings.models import Booking, ProcessingAttempt, WebhookEvent
from bookings.tasks import retry_due_events
from calsync.errors import BookingBusy, PermanentSyncError, SyncError
from tests.bookings.fake_reconcilers import FIRST, SECOND
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def reconcilers(settings, fake_reconcilers):
    settings.CALSYNC_RECONCILERS = [FIRST, SECOND]
    settings.CALSYNC_RETRY_BACKOFF = [60, 300, 1800, 7200, 43200]


def stored(name="calendly/invitee_created.json") -> WebhookEvent:
    """Store a delivery without running its on-commit enqueue (as if the process died right after)."""
    result = store_delivery(load_fixture(name))
    return WebhookEvent.objects.get(pk=result.event.pk)


def test_pipeline_runs_each_reconciler_in_order_and_records_steps(fake_reconcilers):
    event = stored()
    assert processing.process_event(event.pk) == "done"
    booking = Booking.objects.get()
    assert fake_reconcilers.calls == [("first", booking.pk), ("second", booking.pk)]
    attempt = ProcessingAttempt.objects.get(event=event)
    assert attempt.outcome == "done" and attempt.number == 1
    assert [(s["step"], s["ok"]) for s in attempt.steps] == [("booking", True), ("tests", True), ("tests", True)]
    assert attempt.steps[1]["detail"] == "first ok" and attempt.steps[2]["detail"] == "up to date"


def test_one_step_failing_does_not_stop_the_next_and_fails_the_event(fake_reconcilers):
    fake_reconcilers.fail["first"] = SyncError("zoom is down")
    event = stored()
    assert processing.process_event(event.pk) == "failed"
    assert [c[0] for c in fake_reconcilers.calls] == ["first", "second"]  # Kommo still ran while Zoom was down
    event.refresh_from_db()
    assert event.status == "failed" and event.attempts == 1
    assert "zoom is down" in event.last_error and event.last_traceback
    assert abs((event.next_attempt_at - timezone.now()).total_seconds() - 60) < 5


def test_backoff_schedule_then_needs_attention(fake_reconcilers):
    fake_reconcilers.fail["first"] = SyncError("still down")
    event = stored()
    delays = []
    for _ in range(6):
        before = timezone.now()
        processing.process_event(event.pk)
        event.refresh_from_db()
        delays.append(
            None if event.next_attempt_at is None else round((event.next_attempt_at - before).total_seconds())
        )
    assert delays == [60, 300, 1800, 7200, 43200, None]
    assert event.needs_attention and event.attempts == 6
    assert ProcessingAttempt.objects.filter(event=event).count() == 6


def test_retry_after_from_the_remote_service_is_honoured(fake_reconcilers):
    fake_reconcilers.fail["first"] = SyncError("429", retry_after=900)
    event = stored()
    processing.process_event(event.pk)
    event.refresh_from_db()
    assert 895 < (event.next_attempt_at - timezone.now()).total_seconds() <= 900


def test_permanent_error_goes_straight_to_needs_attention(fake_reconcilers):
    fake_reconcilers.fail["second"] = PermanentSyncError("Kommo says 401: token revoked")
    event = stored()
    processing.process_event(event.pk)
    event.refresh_from_db()
    assert event.needs_attention and "token revoked" in event.last_error


def test_unexpected_exception_is_recorded_and_retried(fake_reconcilers):
    fake_reconcilers.fail["first"] = KeyError("bug")
    event = stored()
    processing.process_event(event.pk)
    event.refresh_from_db()
    assert event.status == "failed" and event.next_attempt_at is not None and "KeyError" in event.last_error


def test_secrets_never_reach_last_error(fake_reconcilers, settings):
    settings.KOMMO_ACCESS_TOKEN = "kommo-secret-token-123"
    fake_reconcilers.fail["first"] = SyncError("request failed with Authorization: Bearer kommo-secret-token-123")
    event = stored()
    processing.process_event(event.pk)
    event.refresh_from_db()
    assert "kommo-secret-token-123" not in event.last_error + event.last_traceback


def test_claim_is_exclusive(fake_reconcilers):
    event = stored()
    assert processing.claim(event.pk) is True
    assert processing.claim(event.pk) is False
    assert processing.process_event(event.pk) == "processing"  # someone else has it: hands off
    assert fake_reconcilers.calls == []


def test_crash_between_store_and_processing_is_recovered_by_the_sweeper(
    fake_reconcilers, django_capture_on_commit_callbacks
):
    event = stored()  # stored, its enqueue lost
    assert event.status == "received"
    assert retry_due_events() == "requeued 0, lost workers 0"  # within the grace period: leave it
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        retry_due_events()
    event.refresh_from_db()
    assert event.status == "done" and fake_reconcilers.calls


def test_worker_killed_mid_processing_is_failed_and_retried_after_the_lease(
    settings, django_capture_on_commit_callbacks
):
    event = stored()
    processing.claim(event.pk)  # a worker took it and died
    ProcessingAttempt.objects.create(event=event, number=1)
    retry_due_events()
    assert WebhookEvent.objects.get(pk=event.pk).status == "processing"  # lease not over yet
    WebhookEvent.objects.filter(pk=event.pk).update(
        processing_started_at=timezone.now() - timedelta(seconds=settings.CALSYNC_PROCESSING_LEASE + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = retry_due_events()
    assert "lost workers 1" in result
    event.refresh_from_db()
    assert event.status == "done" and event.attempts == 2
    outcomes = list(ProcessingAttempt.objects.filter(event=event).values_list("error", "outcome"))
    assert outcomes == [("worker lost", "failed"), ("", "done")]


def test_sweeper_retries_failed_events_when_due_only(fake_reconcilers, django_capture_on_commit_callbacks):
    fake_reconcilers.fail["first"] = SyncError("down")
    event = stored()
    processing.process_event(event.pk)
    fake_reconcilers.fail.clear()
    with django_capture_on_commit_callbacks(execute=True):
        retry_due_events()
    assert WebhookEvent.objects.get(pk=event.pk).status == "failed"  # not due yet
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        retry_due_events()
    assert WebhookEvent.objects.get(pk=event.pk).status == "done"


def test_sweeper_leaves_needs_attention_events_alone(fake_reconcilers, django_capture_on_commit_callbacks):
    fake_reconcilers.fail["first"] = PermanentSyncError("bad")
    event = stored()
    processing.process_event(event.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_due_events() == "requeued 0, lost workers 0"


def test_sweeper_schedule_exists_after_migrate():
    schedule = Schedule.objects.get(name="calsync: retry due events")
    assert schedule.func == "bookings.tasks.retry_due_events" and schedule.minutes == 1


def test_replay_of_failed_event_inline(fake_reconcilers):
    fake_reconcilers.fail["first"] = SyncError("down")
    event = stored()
    processing.process_event(event.pk)
    fake_reconcilers.fail.clear()
    result = processing.replay(WebhookEvent.objects.get(pk=event.pk), inline=True)
    assert result.outcome == "done"
    assert WebhookEvent.objects.get(pk=event.pk).status == "done"


def test_replay_of_finished_event_runs_again_and_is_idempotent():
    event = stored()
    processing.process_event(event.pk)
    snapshot = list(Booking.objects.values())
    result = processing.replay(WebhookEvent.objects.get(pk=event.pk), inline=True)
    assert result.outcome == "done"
    assert list(Booking.objects.values()) == snapshot
    assert ProcessingAttempt.objects.filter(event=event).count() == 2


def test_replay_queued_goes_through_the_queue(django_capture_on_commit_callbacks):
    event = stored()
    with django_capture_on_commit_callbacks(execute=True):
        result = processing.replay(event)
    assert result.outcome == "queued"
    assert WebhookEvent.objects.get(pk=event.pk).status == "done"


def test_replay_leaves_an_event_in_flight_alone():
    event = stored()
    processing.claim(event.pk)
    assert processing.replay(WebhookEvent.objects.get(pk=event.pk), inline=True).outcome == "skipped"


def test_booking_lock_makes_a_concurrent_sync_wait_then_retry():
    event = stored()
    processing.process_event(event.pk)
    booking = Booking.objects.get()
    with steps.booking_sync_lock([booking]):
        with pytest.raises(BookingBusy):
            with steps.booking_sync_lock([booking], wait=0.2):
                pass
    with steps.booking_sync_lock([booking], wait=0.2):  # released afterwards
        pass


def test_expired_booking_lock_is_taken_over():
    event = stored()
    processing.process_event(event.pk)
    Booking.objects.update(sync_lock_token="dead", sync_lock_expires_at=timezone.now() - timedelta(seconds=1))
    with steps.booking_sync_lock([Booking.objects.get()], wait=0.2):
        pass


def test_queue_settings_pass_the_system_check(settings):
    from calsync.checks import check_queue_and_pipeline

    assert check_queue_and_pipeline(None) == []
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "retry": 10, "timeout": 60}
    settings.CALSYNC_RECONCILERS = ["nowhere.reconcile"]
    assert sorted(e.id for e in check_queue_and_pipeline(None)) == ["calsync.E001", "calsync.E002"]


def test_check_deploy_is_clean_in_production_configuration():
    """`manage.py check --deploy` with DEBUG off and real secrets: no warning left that we could fix."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "calsync.settings",
        "DEBUG": "false",
        "SECRET_KEY": "x7$Qm2!vR9#pL4@wZ8^kT1&nB6*yH3(cF5)jD0_sG" + "a1b2c3d4e5f6",
        "CALENDLY_SIGNING_KEY": "a-real-signing-key",
        "ALLOWED_HOSTS": "calsync.example.com",
        "DATABASE_URL": "sqlite:////tmp/calsync-check-deploy.sqlite3",
        "KOMMO_BASE_URL": "https://acme.kommo.com",
        "KOMMO_ACCESS_TOKEN": "a-long-lived-token",
        "ZOOM_ACCOUNT_ID": "acc",
        "ZOOM_CLIENT_ID": "cid",
        "ZOOM_CLIENT_SECRET": "secret",
        "EMAIL_URL": "smtp://mail.example.com:587",
        "CALSYNC_METRICS_TOKEN": "a-long-metrics-token",
    }
    env.pop("SECURE_SSL_REDIRECT", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# --- a reconciler's read-ahead runs alongside the steps before it ---------------------------------------

_seen: dict = {}


def meeting_step(booking) -> str:
    # Stands for the Zoom step: it only finishes once the next step's lookup is under way, so the event
    # can only finish if the two run side by side (in series it would give up and fail the step).
    assert _seen["lookup_started"].wait(timeout=10), "the lookup waited for the meeting step"
    return "meeting"


def deal_step(booking, *, prepared=None) -> str:
    _seen["prepared"] = prepared
    return "deal"


def _lookup(booking):
    _seen["thread"] = threading.current_thread().name
    _seen["lookup_started"].set()
    if _seen.get("lookup_fails"):
        raise SyncError("Kommo search timed out")
    return ("looked up", booking.pk)


deal_step.prepare = _lookup


@pytest.fixture
def side_by_side(settings):
    _seen.clear()
    _seen["lookup_started"] = threading.Event()
    settings.CALSYNC_RECONCILERS = [f"{__name__}.meeting_step", f"{__name__}.deal_step"]
    settings.CALSYNC_CONCURRENT_STEPS = True
    return _seen


def test_a_reconcilers_prepare_runs_alongside_the_steps_before_it(side_by_side):
    event = stored()
    assert processing.process_event(event.pk) == "done"
    booking = Booking.objects.get()
    assert side_by_side["prepared"] == ("looked up", booking.pk)  # handed to the reconciler
    assert side_by_side["thread"] == "calsync-prepare"


def test_a_failed_prepare_fails_its_step_as_the_same_read_inside_it_would(side_by_side):
    side_by_side["lookup_fails"] = True
    event = stored()
    assert processing.process_event(event.pk) == "failed"
    attempt = ProcessingAttempt.objects.get(event=event)
    assert [s["ok"] for s in attempt.steps] == [True, True, False]  # the meeting step still ran
    assert "Kommo search timed out" in attempt.steps[-1]["detail"] and "prepared" not in side_by_side


# --- the database broker's task is written in the event's own transaction ----------------------------------


@pytest.fixture
def orm_broker(monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")


def test_the_database_brokers_task_commits_with_the_event(orm_broker):
    from django_q.models import OrmQ

    event = stored()
    assert OrmQ.objects.count() == 1  # written at once, in the event's transaction: no on-commit step
    assert WebhookEvent.objects.get(pk=event.pk).status == "received"


def test_the_database_brokers_task_rolls_back_with_the_event(orm_broker):
    from django.db import transaction
    from django_q.models import OrmQ

    from bookings.tasks import enqueue_processing

    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_processing(12345)
        raise RuntimeError("the event's INSERT failed")
    assert OrmQ.objects.count() == 0  # no task left for an event that was never stored


def test_other_brokers_are_told_after_the_commit(monkeypatch, django_capture_on_commit_callbacks):
    from django.db import transaction
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)

    from bookings.tasks import enqueue_processing

    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        enqueue_processing(12345)
    assert len(callbacks) == 1  # a Redis worker must not start before the row is visible
