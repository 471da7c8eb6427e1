"""crm and conferencing add their columns to the booking admin without bookings importing them."""

import pytest
from django.urls import reverse

from bookings import processing
from bookings.admin_extensions import booking_columns
from bookings.intake import store_delivery
from bookings.models import Booking
from conferencing.models import ZoomMeeting
from crm.models import KommoLink
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db


def test_crm_and_conferencing_register_their_columns_in_order():
    assert [(c.name, c.description) for c in booking_columns()] == [("deal", "Kommo deal"), ("zoom", "Zoom meeting")]


def test_booking_list_and_page_show_the_deal_and_the_meeting(admin_client, settings):
    settings.CALSYNC_RECONCILERS = []
    processing.process_event(store_delivery(load_fixture("calendly/invitee_created.json")).event.pk)
    booking = Booking.objects.get()
    KommoLink.objects.create(booking=booking, lead_id=4242)
    ZoomMeeting.objects.create(
        booking=booking, event_uri=booking.event_uri, meeting_id=8123, join_url="https://zoom.example/j/8123"
    )
    for page in (
        admin_client.get(reverse("admin:bookings_booking_changelist")),
        admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])),
    ):
        html = page.content.decode()
        assert page.status_code == 200
        assert "Kommo deal" in html and "4242" in html  # no KOMMO_BASE_URL: the id without a link
        assert "Zoom meeting" in html and "https://zoom.example/j/8123" in html
