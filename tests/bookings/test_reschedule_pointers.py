"""Reschedule pointers link two bookings only when they are one invitee's, one successor each, no cycle.

A pointer that breaks the rule is ignored: the booking is processed on its own and flagged for a person.
"""

import itertools

import pytest
from django.urls import reverse

from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from bookings.processing import process_event
from tests.conftest import load_json, to_body, variant

pytestmark = pytest.mark.django_db

CREATED = "calendly/invitee_created.json"
RESCHED_NEW = "calendly/reschedule_2_invitee_created_new.json"
RESCHED_OLD = "calendly/reschedule_1_invitee_canceled_old.json"
BASE = load_json(CREATED)["payload"]


def booked(name: str, *, email: str = BASE["email"], old: str | None = None, new_event: str | None = None) -> dict:
    """An invitee.created for invitee `name` (under its own event), naming `old` as its old half."""
    event = new_event or f"https://api.calendly.com/scheduled_events/EV-{name}"
    return variant(
        CREATED,
        uri=f"{event}/invitees/{name}",
        event=event,
        email=email,
        old_invitee=old,
        **{"scheduled_event.uri": event},
    )


def uri(name: str) -> str:
    return f"https://api.calendly.com/scheduled_events/EV-{name}/invitees/{name}"


def deliver(body: dict) -> WebhookEvent:
    event = WebhookEvent.objects.get(pk=store_delivery(to_body(body)).event.pk)
    process_event(event.pk)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.DONE, event.last_error  # never a retry loop
    return event


def get(name: str) -> Booking:
    return Booking.objects.get(invitee_uri=uri(name))


@pytest.mark.parametrize("stranger_first", [False, True])
def test_a_stranger_cannot_take_over_another_invitees_booking(stranger_first):
    victim = booked("victim")
    stranger = booked("stranger", email="mallory@evil.example", old=uri("victim"))
    for body in [stranger, victim] if stranger_first else [victim, stranger]:
        deliver(body)
    victim_booking, stranger_booking = get("victim"), get("stranger")
    assert victim_booking.status == Booking.Status.SCHEDULED  # not "rescheduled", still live
    assert victim_booking.next_invitee_uri == "" and victim_booking.link_problem == ""
    assert stranger_booking.status == Booking.Status.SCHEDULED and stranger_booking.rescheduled_from is None
    assert [b.pk for b in stranger_booking.chain()] == [stranger_booking.pk]  # no Kommo task or Zoom to take over
    assert "different invitees" in stranger_booking.link_problem


def test_the_same_invitee_with_another_case_of_email_links():
    deliver(booked("first"))
    deliver(booked("second", email=BASE["email"].upper(), old=uri("first")))
    assert get("second").rescheduled_from == get("first")
    assert get("first").status == Booking.Status.RESCHEDULED
    assert get("first").link_problem == get("second").link_problem == ""


@pytest.mark.parametrize("a_first", [True, False])
def test_two_bookings_naming_each_other_link_neither(a_first):
    a, b = booked("A", old=uri("B")), booked("B", old=uri("A"))
    for body in [a, b] if a_first else [b, a]:
        deliver(body)
    for name in "AB":
        booking = get(name)
        assert booking.status == Booking.Status.SCHEDULED and booking.rescheduled_from is None
        assert "cycle" in booking.link_problem


def test_cancellations_naming_each_other_link_neither():
    def moved(name: str, to: str) -> dict:
        body = booked(name)
        body["event"] = "invitee.canceled"
        body["payload"].update(rescheduled=True, new_invitee=uri(to), status="canceled")
        return body

    deliver(moved("A", "B"))
    deliver(moved("B", "A"))
    assert not Booking.objects.filter(rescheduled_from__isnull=False).exists()
    assert all("cycle" in b.link_problem for b in Booking.objects.all())


@pytest.mark.parametrize("order", list(itertools.permutations(["old", "n1", "n2"])))
def test_two_new_bookings_naming_one_old_one_link_one_and_flag_the_other(order):
    """Before: the second link broke the one-to-one constraint, and the event failed on every retry."""
    bodies = {"old": booked("old"), "n1": booked("n1", old=uri("old")), "n2": booked("n2", old=uri("old"))}
    for name in order:
        deliver(bodies[name])
    old = get("old")
    successors = list(Booking.objects.filter(rescheduled_from=old))
    assert len(successors) == 1 and old.status == Booking.Status.RESCHEDULED
    other = get("n2" if successors[0].invitee_uri == uri("n1") else "n1")
    assert other.rescheduled_from is None and other.status == Booking.Status.SCHEDULED
    assert "already moved" in other.link_problem
    assert successors[0].link_problem == "" and old.link_problem == ""


def test_processing_again_does_not_repeat_the_flag():
    deliver(booked("victim"))
    event = deliver(booked("stranger", email="mallory@evil.example", old=uri("victim")))
    first = get("stranger").link_problem
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.FAILED)
    process_event(event.pk)
    assert get("stranger").link_problem == first and len(first.splitlines()) == 1


def test_the_real_reschedule_still_links_in_both_orders():
    for bodies in ([RESCHED_NEW, RESCHED_OLD], [RESCHED_OLD, RESCHED_NEW]):
        Booking.objects.all().delete()
        WebhookEvent.objects.all().delete()
        for name in bodies:
            deliver(load_json(name))
        new = Booking.objects.get(invitee_uri=load_json(RESCHED_NEW)["payload"]["uri"])
        assert new.rescheduled_from is not None and new.rescheduled_from.status == Booking.Status.RESCHEDULED
        assert not Booking.objects.exclude(link_problem="").exists()


def test_the_flag_shows_in_the_admin(admin_client):
    deliver(booked("victim"))
    deliver(booked("stranger", email="mallory@evil.example", old=uri("victim")))
    stranger = get("stranger")
    page = admin_client.get(reverse("admin:bookings_booking_change", args=[stranger.pk])).content.decode()
    assert "reschedule link problem" in page.lower() and "different invitees" in page
    changelist = reverse("admin:bookings_booking_changelist")
    assert admin_client.get(changelist, {"link_problem": "yes"}).context["cl"].result_count == 1
