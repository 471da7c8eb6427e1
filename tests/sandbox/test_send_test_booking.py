"""send_test_booking as a newcomer uses it: book, then move or cancel *that* booking, for the demo invitees."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.management import call_command

from bookings.models import Booking, WebhookEvent
from crm.models import ReviewItem
from sandbox import booking_memory, demo
from sandbox import calendly_sender as cs
from sandbox.kommo_emulator import KommoEmulator


@pytest.fixture
def webhook_url(live_server) -> str:
    return f"{live_server.url}/webhooks/calendly/"


@pytest.fixture
def crm(settings):
    """calsync's CRM step against the demo CRM on a Kommo emulator, as in the sandbox."""
    with KommoEmulator.running(seed=demo.kommo_seed()) as emulator:
        settings.KOMMO_BASE_URL = emulator.url
        settings.KOMMO_ACCESS_TOKEN = demo.KOMMO_TOKEN
        settings.KOMMO_SEVERAL_DEALS_POLICY = demo.sandbox_policies({})["KOMMO_SEVERAL_DEALS_POLICY"]
        settings.KOMMO_NO_DEAL_POLICY = "inbound_lead"
        settings.KOMMO_PIPELINE_IDS = []
        settings.CALSYNC_RECONCILERS = ["crm.sync.reconcile"]
        cache.clear()
        yield emulator
        cache.clear()


def note_texts(emulator: KommoEmulator, lead_id: int) -> list[str]:
    return [n["params"]["text"] for n in emulator.state()["notes"] if n["entity_id"] == lead_id]


def test_reschedule_moves_the_booking_sent_before_and_the_deal_says_moved(webhook_url, crm, capsys):
    call_command("send_test_booking", "--url", webhook_url, "--seed", "1")
    first = Booking.objects.get()
    call_command("send_test_booking", "--url", webhook_url, "--reschedule")
    output = capsys.readouterr().out

    assert "Acting on the 1 booking(s) sent before" in output
    old, new = Booking.objects.order_by("start_at")
    assert old == first and old.status == Booking.Status.RESCHEDULED and new.rescheduled_from == old
    assert (new.start_at - old.start_at).days == 1
    texts = note_texts(crm, demo.DEMO_OPEN_DEAL_ID)
    assert [t.splitlines()[0] for t in texts] == ["Calendly: meeting booked", "Calendly: meeting moved"]


def test_cancel_cancels_the_booking_sent_before_then_a_new_run_books_again(webhook_url, capsys):
    call_command("send_test_booking", "--url", webhook_url)
    call_command("send_test_booking", "--url", webhook_url, "--cancel")
    booking = Booking.objects.get()
    assert booking.status == Booking.Status.CANCELED
    assert [e.kind for e in WebhookEvent.objects.order_by("id")] == ["invitee.created", "invitee.canceled"]

    call_command("send_test_booking", "--url", webhook_url, "--cancel")  # nothing live remembered: book, then cancel
    assert Booking.objects.count() == 2 and set(Booking.objects.values_list("status", flat=True)) == {"canceled"}


def test_new_books_again_even_when_a_booking_is_remembered(webhook_url):
    call_command("send_test_booking", "--url", webhook_url)
    call_command("send_test_booking", "--url", webhook_url, "--new", "--reschedule")
    assert Booking.objects.count() == 3
    assert Booking.objects.filter(status=Booking.Status.RESCHEDULED).count() == 1


def test_as_several_deals_puts_the_meeting_in_the_review_queue(webhook_url, crm):
    call_command("send_test_booking", "--url", webhook_url, "--as", "several-deals")
    item = ReviewItem.objects.get()
    assert item.booking.invitee_email == demo.SEVERAL_DEALS_EMAIL
    assert crm.state()["notes"] == []  # nothing written until staff choose


def test_as_unknown_makes_an_incoming_lead(webhook_url, crm):
    call_command("send_test_booking", "--url", webhook_url, "--as", "unknown")
    assert Booking.objects.get().invitee_email == demo.UNKNOWN_EMAIL
    [incoming] = crm.state()["unsorted"]
    assert not ReviewItem.objects.exists() and incoming["lead_ids"]


def test_the_sandbox_asks_staff_about_several_deals_unless_configured_otherwise():
    assert demo.sandbox_policies({}) == {"KOMMO_SEVERAL_DEALS_POLICY": "review"}
    assert demo.sandbox_policies({"KOMMO_SEVERAL_DEALS_POLICY": "most_recent"}) == {}


def host_of(event: WebhookEvent) -> dict:
    return event.payload["payload"]["scheduled_event"]["event_memberships"][0]


@pytest.mark.parametrize(
    ("args", "email", "name"),
    [
        ([], demo.DEMO_HOST_EMAIL, demo.DEMO_HOST_NAME),
        (["--host-email", "ana.gil-soto@acme-sales.example"], "ana.gil-soto@acme-sales.example", "Ana Gil Soto"),
        (["--host-email", "ana@x.example", "--host-name", "Ana María Gil"], "ana@x.example", "Ana María Gil"),
    ],
)
def test_the_host_name_follows_the_host_email(webhook_url, args, email, name):
    call_command("send_test_booking", "--url", webhook_url, *args)
    assert host_of(WebhookEvent.objects.get()) == {"user": cs.HOST_USER_URI, "user_email": email, "user_name": name}


def test_host_name_for():
    assert cs.host_name_for("Marta.Ruiz@acme-sales.example") == demo.DEMO_HOST_NAME
    assert cs.host_name_for("tomas_vidal+calendly@x.example") == "Tomas Vidal"


@pytest.mark.django_db
def test_the_next_step_waits_until_calsync_tried_the_one_before():
    event = WebhookEvent.objects.create(kind="invitee.created", dedupe_key="k")
    naps: list[float] = []

    def nap(seconds: float) -> None:  # the worker processes the event meanwhile
        naps.append(seconds)
        WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.DONE, attempts=1)

    assert booking_memory.wait_until_processed([event.pk], timeout=5, sleep=nap) is True
    assert len(naps) == 1
    assert booking_memory.wait_until_processed([event.pk + 99], timeout=5, sleep=nap) is None  # another calsync


@pytest.mark.django_db
def test_waiting_gives_up_after_the_timeout():
    event = WebhookEvent.objects.create(kind="invitee.created", dedupe_key="k")
    now = [0.0]

    def nap(seconds: float) -> None:
        now[0] += seconds

    assert booking_memory.wait_until_processed([event.pk], timeout=1, sleep=nap, clock=lambda: now[0]) is False


def test_remembered_bookings_round_trip(tmp_path):
    booking = cs.booking(start=cs.datetime(2026, 12, 1, 15, tzinfo=cs.UTC), tracking={"utm_source": "x"})
    path = tmp_path / "var" / "test_bookings.json"
    booking_memory.remember(path, [booking])
    assert booking_memory.remembered(path) == [booking]
    path.write_text("{broken")
    assert booking_memory.remembered(path) == []
