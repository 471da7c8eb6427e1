"""The events and bookings admin: pages render in words, replay works, permissions hold."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from calsync.errors import PermanentSyncError
from tests.bookings.fake_reconcilers import FIRST
from tests.conftest import SIGNING_KEY, load_fixture

pytestmark = pytest.mark.django_db

EVENTS = reverse("admin:bookings_webhookevent_changelist")
BOOKINGS = reverse("admin:bookings_booking_changelist")


@pytest.fixture(autouse=True)
def reconcilers(settings, fake_reconcilers):
    settings.CALSYNC_RECONCILERS = [FIRST]


@pytest.fixture
def failed_event(fake_reconcilers):
    event = WebhookEvent.objects.get(pk=store_delivery(load_fixture("calendly/invitee_created.json")).event.pk)
    fake_reconcilers.fail["first"] = PermanentSyncError("Kommo answered 401: the token was revoked")
    processing.process_event(event.pk)
    fake_reconcilers.fail.clear()
    return WebhookEvent.objects.get(pk=event.pk)


def staff(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    return user


def test_event_list_and_detail_speak_plainly(admin_client, failed_event):
    page = admin_client.get(EVENTS).content.decode()
    assert "lucia.fernandez@clientco.example" in page and "needs attention" in page
    assert "30-min Product Demo" in page
    detail = admin_client.get(reverse("admin:bookings_webhookevent_change", args=[failed_event.pk])).content.decode()
    assert "will not be retried automatically" in detail
    assert "Fix its cause" in detail and "Kommo answered 401" in detail
    assert "the token was revoked" in detail  # the error in full
    assert "Processing history" in detail and "✘" in detail
    assert "&quot;invitee.created&quot;" in detail or "invitee.created" in detail  # pretty payload
    assert SIGNING_KEY not in detail


def test_event_filters_and_search(admin_client, failed_event):
    assert admin_client.get(EVENTS, {"status__exact": "failed"}).context["cl"].result_count == 1
    assert admin_client.get(EVENTS, {"status__exact": "done"}).context["cl"].result_count == 0
    assert admin_client.get(EVENTS, {"q": "lucia.fernandez"}).context["cl"].result_count == 1
    assert admin_client.get(EVENTS, {"q": "nobody@else"}).context["cl"].result_count == 0


def test_replay_action_reports_per_event(admin_client, failed_event, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            EVENTS, {"action": "replay_selected", "_selected_action": [failed_event.pk]}, follow=True
        )
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"Event #{failed_event.pk}: done — tests: first ok."]
    assert WebhookEvent.objects.get(pk=failed_event.pk).status == "done"


def test_sync_again_action_on_bookings(admin_client, failed_event, django_capture_on_commit_callbacks):
    booking = Booking.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(BOOKINGS, {"action": "sync_again", "_selected_action": [booking.pk]}, follow=True)
    assert "Lucía Fernández’s meeting: done" in " ".join(str(m) for m in response.context["messages"])
    assert WebhookEvent.objects.get(pk=failed_event.pk).status == "done"


def test_booking_pages_render(admin_client, failed_event):
    booking = Booking.objects.get()
    assert "Lucía Fernández" in admin_client.get(BOOKINGS).content.decode()
    detail = admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    assert "marta.ruiz@acme-sales.example" in detail and "sync_lock_token" not in detail
    assert "Lucía Fernández’s 30-min Product Demo is booked for" in detail
    assert "Calendly sent invitee.created" in detail and "✘ tests: Kommo answered 401" in detail
    assert "Deal ID (if you have one)" in detail  # answers shown as text, not JSON


def test_booking_timeline_follows_a_reschedule(admin_client):
    for name in ("reschedule_2_invitee_created_new", "reschedule_1_invitee_canceled_old"):
        event = WebhookEvent.objects.get(pk=store_delivery(load_fixture(f"calendly/{name}.json")).event.pk)
        processing.process_event(event.pk)
    new = Booking.objects.get(status="scheduled")
    detail = admin_client.get(reverse("admin:bookings_booking_change", args=[new.pk])).content.decode()
    assert "Moved here from 30-min Product Demo with Jonas Weber at 2026-11-27 10:00 UTC" in detail


def test_viewer_without_replay_permission_cannot_replay(client, failed_event):
    client.force_login(staff("viewer", "bookings.view_webhookevent"))
    page = client.get(EVENTS)
    assert page.status_code == 200 and "replay_selected" not in page.content.decode()
    response = client.post(EVENTS, {"action": "replay_selected", "_selected_action": [failed_event.pk]}, follow=True)
    assert WebhookEvent.objects.get(pk=failed_event.pk).status == "failed"
    assert response.status_code == 200


def test_nothing_is_editable_even_for_superusers(admin_client, failed_event):
    url = reverse("admin:bookings_webhookevent_change", args=[failed_event.pk])
    admin_client.post(url, {"status": "done"})
    assert WebhookEvent.objects.get(pk=failed_event.pk).status == "failed"
    assert admin_client.get(reverse("admin:bookings_webhookevent_add")).status_code == 403


def test_anonymous_sees_nothing(client, failed_event):
    for url in (EVENTS, BOOKINGS, reverse("admin:bookings_webhookevent_change", args=[failed_event.pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize(
    "join_url",
    ["javascript:alert(document.cookie)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<b>x</b>"],
)
def test_a_join_url_that_is_not_a_web_address_is_never_a_link(admin_client, post_delivery, join_url):
    """A crafted payload's conference link must not become a clickable javascript:/data: link."""
    from tests.conftest import variant

    body = variant(
        "calendly/invitee_created.json",
        **{"scheduled_event.location": {"type": "zoom", "status": "pushed", "join_url": join_url}},
    )
    assert post_delivery(body).status_code == 202
    booking = Booking.objects.get()
    assert booking.conference_join_url == join_url

    for url in (reverse("admin:bookings_booking_change", args=[booking.pk]), BOOKINGS):
        page = admin_client.get(url).content.decode().lower()
        assert 'href="javascript' not in page and 'href=" javascript' not in page and 'href="data:' not in page
    assert "calendly’s link" in page


def test_a_web_join_url_is_a_link(admin_client, post_delivery):
    from tests.conftest import variant

    link = "https://us06web.zoom.us/j/85512345678?pwd=abc"
    body = variant(
        "calendly/invitee_created.json",
        **{"scheduled_event.location": {"type": "zoom", "status": "pushed", "join_url": link}},
    )
    post_delivery(body)
    page = admin_client.get(BOOKINGS).content.decode()
    assert 'href="https://us06web.zoom.us/j/85512345678?pwd=abc"' in page
