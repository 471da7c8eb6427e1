"""Alert digests: one mail for many problems, at most one per CALSYNC_ALERT_INTERVAL, each item reported once."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from calsync.models import Alert
from ops import alerts
from ops.tasks import send_alert_digest
from tests.bookings.fake_reconcilers import FIRST
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def alert_settings(settings, fake_reconcilers):
    settings.CALSYNC_ALERT_EMAILS = ["ops@acme-sales.example", "lead@acme-sales.example"]
    settings.CALSYNC_ALERT_INTERVAL = 3600
    settings.CALSYNC_REVIEW_ALERT_HOURS = 24
    settings.CALSYNC_RECONCILERS = [FIRST]
    settings.CALSYNC_RETRY_BACKOFF = []  # every failure needs attention at once


def failed_event(fake_reconcilers, name: str) -> WebhookEvent:
    fake_reconcilers.fail["first"] = RuntimeError("Kommo answered 402 Payment Required")
    event = WebhookEvent.objects.get(pk=store_delivery(load_fixture(name)).event.pk)
    processing.process_event(event.pk)
    event.refresh_from_db()
    assert event.needs_attention
    return event


def test_two_failures_make_one_mail(fake_reconcilers):
    a = failed_event(fake_reconcilers, "calendly/invitee_created.json")
    b = failed_event(fake_reconcilers, "calendly/reschedule_2_invitee_created_new.json")
    assert send_alert_digest().startswith("2 new alert(s); sent 2")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@acme-sales.example", "lead@acme-sales.example"]
    assert f"event #{a.pk}" in message.body and f"event #{b.pk}" in message.body
    assert f"https://calsync.example.com/admin/bookings/webhookevent/{a.pk}/change/" in message.body
    assert "402 Payment Required" in message.body
    # Reported once: the next run has nothing new.
    send_alert_digest()
    assert len(mail.outbox) == 1


def test_the_interval_holds_new_alerts_back_then_sends_only_them(fake_reconcilers):
    failed_event(fake_reconcilers, "calendly/invitee_created.json")
    start = timezone.now()
    alerts.collect_alerts(start)
    assert alerts.send_alert_digest(start).sent
    later = failed_event(fake_reconcilers, "calendly/reschedule_2_invitee_created_new.json")
    alerts.collect_alerts(start + timedelta(minutes=10))
    held = alerts.send_alert_digest(start + timedelta(minutes=10))
    assert not held.sent and len(mail.outbox) == 1
    assert alerts.send_alert_digest(start + timedelta(minutes=61)).sent
    assert len(mail.outbox) == 2
    second = mail.outbox[1].body
    assert f"event #{later.pk}" in second and second.count("event #") == 1


def test_review_items_and_the_meeting_soon_warning():
    store_delivery(load_fixture("calendly/invitee_created.json"))
    booking_data = WebhookEvent.objects.get()
    processing.process_event(booking_data.pk)
    booking = Booking.objects.get()
    booking.crm_status = Booking.CrmStatus.NEEDS_REVIEW
    booking.save()
    far = booking.start_at - timedelta(days=3)
    assert alerts.collect_alerts(far) == 1  # needs review; the meeting is not near yet
    near = booking.start_at - timedelta(hours=5)
    assert alerts.collect_alerts(near) == 1  # now also "meeting soon"
    assert alerts.collect_alerts(near) == 0
    assert set(Alert.objects.values_list("kind", flat=True)) == {"review_needed", "review_near_meeting"}
    alerts.send_alert_digest(near)
    body = mail.outbox[0].body
    assert "Review items whose meeting is soon (1)" in body and "Bookings waiting for a deal" in body
    assert "action needed" in mail.outbox[0].subject
    assert "lucia" not in body.lower()  # ids, times and links; no invitee personal data


def test_no_recipients_keeps_alerts_pending(settings):
    settings.CALSYNC_ALERT_EMAILS = []
    alerts.raise_alert("x:1", alerts.OTHER, "something")
    assert "CALSYNC_ALERT_EMAILS is empty" in str(alerts.send_alert_digest())
    assert Alert.objects.get().reported_at is None and not mail.outbox


def test_a_failed_send_is_retried_next_run(monkeypatch):
    alerts.raise_alert("x:1", alerts.OTHER, "something")

    def broken(*args, **kwargs):
        raise ConnectionRefusedError

    monkeypatch.setattr(alerts, "send_mail", broken)
    assert "sending failed" in str(alerts.send_alert_digest())
    assert Alert.objects.get().reported_at is None
    monkeypatch.undo()
    assert alerts.send_alert_digest().sent


def test_failing_again_after_a_replay_is_reported_again(fake_reconcilers):
    event = failed_event(fake_reconcilers, "calendly/invitee_created.json")
    send_alert_digest()
    processing.replay(event, inline=True)  # fails again: attempts 2
    alerts.collect_alerts()
    assert Alert.objects.filter(reported_at__isnull=True).count() == 1


def test_email_timeout_is_short_by_default():
    """Without EMAIL_TIMEOUT, smtplib waits forever on a server that accepts and never answers."""
    from calsync import settings as base

    assert 0 < base.EMAIL_TIMEOUT <= 30


def test_a_stuck_smtp_server_fails_the_send_instead_of_holding_the_worker(settings):
    import socket
    import threading

    from django.core.mail import send_mail

    stuck = socket.create_server(("127.0.0.1", 0))  # accepts connections, never sends the greeting
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", stuck.getsockname()[1]
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1
    outcome: list[BaseException | str] = []

    def send() -> None:
        try:
            send_mail("calsync alert", "body", "calsync@localhost", ["ops@example.com"])
            outcome.append("sent")
        except BaseException as exc:  # whatever it is, it must come back
            outcome.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        sender.join(timeout=15)
    finally:
        stuck.close()
    assert outcome and "timed out" in str(outcome[0])  # smtplib may wrap the TimeoutError
