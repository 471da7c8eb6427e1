"""Sync health, the "needs a person" banner, the Replay and Sync again buttons, and displays that stay true."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from bookings import processing
from bookings.health import SyncHealth, health_of, plain_error
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from calsync.errors import PermanentSyncError, SyncError
from tests.bookings.fake_reconcilers import FIRST
from tests.bookings.test_admin import staff
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db

EVENTS = reverse("admin:bookings_webhookevent_changelist")
BOOKINGS = reverse("admin:bookings_booking_changelist")


@pytest.fixture(autouse=True)
def reconcilers(settings, fake_reconcilers):
    settings.CALSYNC_RECONCILERS = [FIRST]


def deliver(name: str = "invitee_created.json") -> WebhookEvent:
    event = WebhookEvent.objects.get(pk=store_delivery(load_fixture(f"calendly/{name}")).event.pk)
    processing.process_event(event.pk)
    return WebhookEvent.objects.get(pk=event.pk)


def failing(fake_reconcilers, exc: Exception) -> WebhookEvent:
    fake_reconcilers.fail["first"] = exc
    return deliver()


PAYMENT = "_StepsFailed: crm: KommoPaymentRequired: Kommo answered 402"


@pytest.mark.parametrize(
    ("stored", "sentence"),
    [
        (PAYMENT, "Kommo says the account is unpaid."),
        ("_StepsFailed: conferencing: IntegrityError: UNIQUE constraint failed: conferencing_zoommeeting.meeting_id",
         "Zoom: the database refused to save a duplicate (a meeting or note id calsync already has)."),
        ("_StepsFailed: crm: KommoPaymentRequired: x; conferencing: ZoomUnavailable: y",
         "Kommo says the account is unpaid; Zoom was down or did not answer."),
        ("tests: PermanentSyncError: Kommo answered 401: the token was revoked",
         "Kommo answered 401: the token was revoked."),
        ("crm: KeyError: 'id'", "Kommo failed unexpectedly (the technical detail says where)."),
    ],
)  # fmt: skip
def test_errors_read_as_sentences_without_class_names(stored, sentence):
    assert plain_error(stored) == sentence


def test_a_booking_failing_for_good_needs_attention_first_in_list_and_page(admin_client, fake_reconcilers):
    event = failing(fake_reconcilers, PermanentSyncError("x"))
    WebhookEvent.objects.filter(pk=event.pk).update(last_error=PAYMENT)
    booking = Booking.objects.get()
    assert health_of(booking) == SyncHealth.NEEDS_ATTENTION
    response = admin_client.get(BOOKINGS)
    assert response.context["cl"].list_display[1] == "health"  # first after the checkbox
    assert "Needs attention" in response.content.decode()
    page = admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    assert page.index("Needs attention") < page.index("In short")
    assert "Why: Kommo says the account is unpaid." in page
    assert "<details" in page and "KommoPaymentRequired" in page.split("<details", 1)[1]  # folded away
    assert "KommoPaymentRequired" not in admin_client.get(EVENTS).content.decode()
    for value, count in ((SyncHealth.NEEDS_ATTENTION, 1), (SyncHealth.IN_SYNC, 0), (SyncHealth.RETRYING, 0)):
        assert admin_client.get(BOOKINGS, {"health": value.value}).context["cl"].result_count == count


def test_health_retrying_review_calendly_link_and_in_sync(fake_reconcilers):
    failing(fake_reconcilers, SyncError("Zoom was down"))
    booking = Booking.objects.get()
    assert health_of(booking) == SyncHealth.RETRYING
    fake_reconcilers.fail.clear()
    processing.replay(WebhookEvent.objects.get(), inline=True)
    assert health_of(booking) == SyncHealth.IN_SYNC
    Booking.objects.update(crm_status=Booking.CrmStatus.NEEDS_REVIEW)
    assert health_of(booking) == SyncHealth.REVIEW
    Booking.objects.update(
        crm_status=Booking.CrmStatus.MATCHED, location_type="zoom_conference", location_status="pushed",
        conference_join_url="",
    )  # fmt: skip
    assert health_of(booking) == SyncHealth.CALENDLY_LINK


def test_index_banner_counts_what_needs_a_person_with_links(admin_client, fake_reconcilers):
    failing(fake_reconcilers, PermanentSyncError("x"))
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "1 event failed and will not be retried on its own" in page
    assert "1 booking is not in sync with Kommo or Zoom" in page
    assert f'href="{EVENTS}?status__exact=failed"' in page
    assert f'href="{BOOKINGS}?health=needs_attention"' in page


def test_replay_button_reports_the_outcome_and_keeps_the_failed_list_true(admin_client, fake_reconcilers):
    event = failing(fake_reconcilers, PermanentSyncError("Kommo answered 402: pay up"))
    page = admin_client.get(reverse("admin:bookings_webhookevent_change", args=[event.pk])).content.decode()
    url = reverse("admin:bookings_webhookevent_replay", args=[event.pk])
    assert f'action="{url}"' in page and 'id="replay-event"' in page
    assert admin_client.get(url).status_code == 405  # a button, never a link
    response = admin_client.post(url, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        f"Event #{event.pk}: failed again: Kommo answered 402: pay up."
    ]
    # The list action too: the "failed" list shown next still holds the event that failed again.
    response = admin_client.post(
        f"{EVENTS}?status__exact=failed", {"action": "replay_selected", "_selected_action": [event.pk]}, follow=True
    )
    assert response.context["cl"].result_count == 1
    fake_reconcilers.fail.clear()
    response = admin_client.post(url, follow=True)
    assert [str(m) for m in response.context["messages"]] == [f"Event #{event.pk}: done — tests: first ok."]
    assert WebhookEvent.objects.get(pk=event.pk).status == "done"


def test_sync_again_button_and_queued_wording(admin_client, fake_reconcilers, settings):
    failing(fake_reconcilers, PermanentSyncError("x"))
    fake_reconcilers.fail.clear()
    booking = Booking.objects.get()
    url = reverse("admin:bookings_booking_sync_again", args=[booking.pk])
    page = admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    assert 'id="sync-again"' in page
    response = admin_client.post(url, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Lucía Fernández’s meeting: done — tests: first ok."]
    settings.CALSYNC_ADMIN_SYNC_INLINE = False
    response = admin_client.post(url, follow=True)
    assert "queued: the worker syncs it within a minute" in str(next(iter(response.context["messages"])))


def test_buttons_need_the_replay_permission_and_csrf(client, fake_reconcilers):
    event = failing(fake_reconcilers, PermanentSyncError("x"))
    client.force_login(staff("viewer", "bookings.view_webhookevent", "bookings.view_booking"))
    page = client.get(reverse("admin:bookings_webhookevent_change", args=[event.pk])).content.decode()
    assert 'id="replay-event"' not in page
    assert client.post(reverse("admin:bookings_webhookevent_replay", args=[event.pk])).status_code == 403
    assert client.post(reverse("admin:bookings_booking_sync_again", args=[event.booking_id])).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.create_superuser("boss", password="pw"))
    assert strict.post(reverse("admin:bookings_webhookevent_replay", args=[event.pk])).status_code == 403
    assert WebhookEvent.objects.get(pk=event.pk).attempts == 1


def test_lists_show_zones_merge_columns_and_filter_by_host(admin_client, fake_reconcilers):
    deliver()
    response = admin_client.get(BOOKINGS)
    page = response.content.decode()
    assert "lucia.fernandez@clientco.example<br>30-min Product Demo with marta.ruiz@acme-sales.example" in page
    assert " CET" in page or " UTC" in page
    assert len(response.context["cl"].list_display) <= 8
    assert admin_client.get(BOOKINGS, {"host": "marta.ruiz@acme-sales.example"}).context["cl"].result_count == 1
    assert admin_client.get(BOOKINGS, {"host": "nobody@acme-sales.example"}).context["cl"].result_count == 0
    events = admin_client.get(EVENTS)
    assert events.context["cl"].list_display[1] == "coloured_status"
    assert "UTC" in events.content.decode() or "CET" in events.content.decode()


def test_the_old_half_of_a_reschedule_says_where_it_moved(admin_client):
    for name in ("reschedule_2_invitee_created_new", "reschedule_1_invitee_canceled_old"):
        deliver(f"{name}.json")
    old, new = Booking.objects.get(status="rescheduled"), Booking.objects.get(status="scheduled")
    new_url = reverse("admin:bookings_booking_change", args=[new.pk])
    page = admin_client.get(reverse("admin:bookings_booking_change", args=[old.pk])).content.decode()
    assert "was moved from" in page and f'href="{new_url}"' in page
    assert "Pending" not in page
    assert "Cancellation" not in page  # a move is not a cancellation
    listing = admin_client.get(BOOKINGS).content.decode()
    assert f'Moved to <a href="{new_url}">' in listing


def test_no_cancellation_box_on_a_live_booking_and_no_join_link_on_a_cancelled_one(admin_client):
    deliver()
    booking = Booking.objects.get()
    Booking.objects.update(conference_join_url="https://zoom.example/j/123")
    url = reverse("admin:bookings_booking_change", args=[booking.pk])
    page = admin_client.get(url).content.decode()
    assert "Cancellation" not in page and "https://zoom.example/j/123" in page
    assert "field-answers" in page
    Booking.objects.update(questions=[], guest_emails=[])
    page = admin_client.get(url).content.decode()
    assert "field-answers" not in page and "field-guests" not in page  # empty rows hidden too
    Booking.objects.update(status="canceled", canceled_by="Lucía", canceled_at=booking.start_at - timedelta(days=1))
    page = admin_client.get(url).content.decode()
    assert "Cancellation" in page and "https://zoom.example/j/123" not in page


def test_a_long_selection_is_queued_and_says_so(
    admin_client, fake_reconcilers, monkeypatch, django_capture_on_commit_callbacks
):
    event = failing(fake_reconcilers, PermanentSyncError("x"))
    monkeypatch.setattr("bookings.outcome.INLINE_AT_MOST", 0)
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(EVENTS, {"action": "replay_selected", "_selected_action": [event.pk]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        f"Event #{event.pk}: queued: the worker syncs it within a minute; reload this page to see the outcome."
    ]
