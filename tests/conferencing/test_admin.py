"""The Zoom meetings list in words: the host's e-mail, and what happens next to a meeting stuck being created."""

import pytest
from django.urls import reverse

from conferencing.models import ZoomMeeting
from tests.conferencing.test_verify import booking_with_meeting

pytestmark = pytest.mark.django_db

MEETINGS = reverse("admin:conferencing_zoommeeting_changelist")


def test_the_list_shows_the_hosts_email_not_the_zoom_user_id(admin_client):
    booking_with_meeting(1, host="KdYKjnimT4KPd8FFgQt9FQ")
    page = admin_client.get(MEETINGS).content.decode()
    assert "marta.ruiz@acme-sales.example" in page and "KdYKjnimT4KPd8FFgQt9FQ" not in page


def test_a_meeting_being_created_says_what_happens_next(admin_client):
    booking = booking_with_meeting(1)
    meeting = ZoomMeeting.objects.get()
    ZoomMeeting.objects.update(status="creating")
    listing = admin_client.get(MEETINGS).content.decode()
    detail = admin_client.get(reverse("admin:conferencing_zoommeeting_change", args=[meeting.pk])).content.decode()
    for page in (listing, detail):
        assert "looks for the meeting among the host" in page and "never twice" in page
    booking.status = "canceled"
    booking.save()
    page = admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    assert booking.conference_join_url not in page  # a cancelled booking offers no join link
