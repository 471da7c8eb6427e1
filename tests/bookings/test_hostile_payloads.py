"""Signed bodies that cannot be stored or processed as they are: a 400 and the raw body kept, or a
shortened copy with a marker, never a 500 and never a retry loop. Runs on SQLite and PostgreSQL."""

import json

import pytest
from django.db import connection
from django.urls import reverse

from bookings import processing
from bookings.models import Booking, WebhookEvent
from tests.conftest import load_fixture, to_body, variant

pytestmark = pytest.mark.django_db

CREATED = "calendly/invitee_created.json"


def _created_with_raw(old: str, new: str) -> bytes:
    """The created fixture with one raw JSON fragment replaced (for what json.dumps cannot write)."""
    raw = load_fixture(CREATED).decode()
    assert old in raw
    return raw.replace(old, new, 1).encode()


NAME = '"name": "Lucía Fernández"'
HOSTILE_BODIES = {
    "100k nested arrays": b"[" * 100_000,
    "deep but short of the recursion limit": b"[" * 500 + b"]" * 500,
    "NaN": _created_with_raw(NAME, '"name": NaN'),
    "Infinity": _created_with_raw(NAME, '"name": -Infinity'),
    "1e999": _created_with_raw('"position": 0', '"position": 1e999'),
    "5000-digit integer": _created_with_raw('"position": 0', '"position": ' + "9" * 5000),
    "lone surrogate": _created_with_raw(NAME, '"name": "Luc\\ud800a"'),
    "lone surrogate in a key": _created_with_raw(NAME, '"\\udfff": 1, ' + NAME),
    "NUL in a string": _created_with_raw(NAME, '"name": "Luc\\u0000a"'),
    "start in year 1": to_body(variant(CREATED, **{"scheduled_event.start_time": "0001-01-01T00:00:00.000000Z"})),
    "created in year 1, east of UTC": to_body(variant(CREATED, created_at="0001-01-01T00:30:00+01:00")),
    "start in year 9999": to_body(
        variant(
            CREATED,
            **{
                "scheduled_event.start_time": "9999-12-31T23:00:00.000000Z",
                "scheduled_event.end_time": "9999-12-31T23:30:00.000000Z",
            },
        )
    ),
    "end in year 9999, west of UTC": to_body(
        variant(CREATED, **{"scheduled_event.end_time": "9999-12-31T23:30:00-05:00"})
    ),
    "over-long event kind": to_body({**variant(CREATED), "event": "invitee.created" + "x" * 200}),
    "over-long invitee uri": to_body(variant(CREATED, uri="https://api.calendly.com/" + "i" * 600)),
    "over-long event uri": to_body(variant(CREATED, event="https://api.calendly.com/" + "e" * 600)),
    "over-long scheduled event uri": to_body(
        variant(CREATED, **{"scheduled_event.uri": "https://api.calendly.com/" + "e" * 600})
    ),
    "over-long e-mail": to_body(variant(CREATED, email="a" * 400 + "@example.com")),
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_signed_body_is_400_and_stored_raw_as_failed(post_delivery, admin_client, name):
    raw = HOSTILE_BODIES[name]
    response = post_delivery(raw)
    assert response.status_code == 400, response.content[:300]
    event = WebhookEvent.objects.get(pk=response.json()["id"])
    assert event.status == WebhookEvent.Status.FAILED
    assert event.next_attempt_at is None  # needs a person, never retried
    assert bytes(event.raw_body) == raw  # byte-exact, whatever it holds
    assert "not a usable Calendly delivery" in event.last_error
    assert len(response.content) < 2000  # the answer does not echo the hostile value
    # …and a person can read it in the admin.
    assert admin_client.get(reverse("admin:bookings_webhookevent_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:bookings_webhookevent_change", args=[event.pk])).status_code == 200
    assert post_delivery(raw).status_code == 400  # a redelivery: the same stored row
    assert WebhookEvent.objects.get(pk=event.pk).deliveries == 2


LONG = "Ä" * 300
OVERSIZED = {
    "name": LONG,
    "first_name": LONG,
    "last_name": LONG,
    "timezone": "Europe/" + "x" * 100,
    "text_reminder_number": "+49" + "1" * 100,
    "scheduled_event.name": LONG,
    "scheduled_event.event_type": "https://api.calendly.com/event_types/" + "t" * 600,
    "scheduled_event.event_memberships": [{"user_email": "host@acme.example", "user_name": LONG}],
    "scheduled_event.location": {
        "type": "zoom_" + "y" * 100,
        "status": "s" * 50,
        "join_url": "https://x/" + "j" * 1200,
    },
    "cancel_url": "https://calendly.com/cancellations/" + "c" * 1200,
}


def test_oversized_text_is_stored_shortened_with_a_marker_and_processed_once(post_delivery, admin_client):
    response = post_delivery(variant(CREATED, **OVERSIZED))
    assert response.status_code == 202, response.content[:300]
    event = WebhookEvent.objects.get(pk=response.json()["id"])
    assert event.status == WebhookEvent.Status.DONE, event.last_error
    booking = Booking.objects.get()
    assert booking.invitee_name == LONG[:254] + "…"
    assert booking.invitee_first_name.endswith("…") and len(booking.invitee_last_name) == 255
    assert booking.event_type_name.endswith("…") and booking.host_name.endswith("…")
    assert len(booking.invitee_timezone) == 64 and booking.invitee_timezone.endswith("…")
    assert len(booking.invitee_phone) == 64 and len(booking.location_type) == 64 and len(booking.location_status) == 32
    assert booking.location_join_url == booking.cancel_url == ""  # a cut link leads nowhere: dropped
    assert admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).status_code == 200


def test_oversized_canceller_name_is_shortened(post_delivery):
    data = json.loads(load_fixture("calendly/invitee_canceled.json"))
    data["payload"]["cancellation"]["canceled_by"] = LONG
    data["payload"]["cancellation"]["canceler_type"] = "host" * 10
    response = post_delivery(data)
    assert response.status_code == 202
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.DONE
    booking = Booking.objects.get()
    assert booking.canceled_by == LONG[:254] + "…" and len(booking.canceler_type) == 20


def test_an_event_stored_before_the_bounds_fails_once_and_waits_for_a_person():
    """A year-9999 delivery accepted by an older version is not retried for ever."""
    data = variant(
        CREATED,
        **{
            "scheduled_event.start_time": "9999-12-31T23:00:00.000000Z",
            "scheduled_event.end_time": "9999-12-31T23:30:00.000000Z",
        },
    )
    event = WebhookEvent.objects.create(
        kind="invitee.created", raw_body=to_body(data), payload=data, dedupe_key="old", invitee_uri="u"
    )
    assert processing.process_event(event.pk) == WebhookEvent.Status.FAILED
    event.refresh_from_db()
    assert event.next_attempt_at is None and "years 1970-2199" in event.last_error
    assert not Booking.objects.exists()


def test_admin_page_of_an_event_stored_before_the_bounds_renders(admin_client):
    """SQLite stored a lone surrogate (escaped) in a payload, and the event's admin page then answered 500."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL refuses such a payload outright (jsonb has no lone surrogates)")
    raw = _created_with_raw(NAME, '"name": "Luc\\ud800a"')
    event = WebhookEvent.objects.create(
        kind="invitee.created", raw_body=raw, payload=json.loads(raw), dedupe_key="old", status="failed"
    )
    page = admin_client.get(reverse("admin:bookings_webhookevent_change", args=[event.pk]))
    assert page.status_code == 200
    assert "Luc?a" in page.content.decode()
