"""invitee_no_show.* deliveries: parsed like invitee.* (the payload is the Invitee) and order-independent."""

import pytest

from bookings.calendly import parse_delivery_data
from bookings.calendly_json import PayloadError
from bookings.models import WebhookEvent
from bookings.state import HANDLERS, apply_event
from tests.crm.conftest import without_deal_id

pytestmark = pytest.mark.django_db


def no_show(kind, created_at, no_show_at=None):
    data = without_deal_id()
    data["event"] = kind
    data["created_at"] = created_at
    data["payload"]["no_show"] = {"uri": "https://api.calendly.com/invitee_no_shows/1", "created_at": no_show_at}
    if no_show_at is None:
        data["payload"]["no_show"] = None
    return data


def apply(data):
    event = WebhookEvent.objects.create(
        kind=data["event"], raw_body=b"{}", payload=data, invitee_uri=data["payload"]["uri"]
    )
    return apply_event(event)


def test_both_kinds_are_handled():
    assert "invitee_no_show.created" in HANDLERS and "invitee_no_show.deleted" in HANDLERS


def test_the_no_show_time_is_parsed():
    delivery = parse_delivery_data(no_show("invitee_no_show.created", "2026-12-02T15:41:00Z", "2026-12-02T15:40:59Z"))
    assert delivery.invitee.no_show_created_at.isoformat() == "2026-12-02T15:40:59+00:00"


def test_a_no_show_payload_without_the_invitee_is_a_clear_error():
    data = {"event": "invitee_no_show.created", "payload": {"uri": "https://api.calendly.com/invitee_no_shows/1"}}
    with pytest.raises(PayloadError, match=r"\$\.payload\.event"):  # neither the event nor its URI
        parse_delivery_data(data)


@pytest.mark.parametrize("order", ["natural", "reversed"])
def test_marked_then_undone_in_either_order_ends_undone(order):
    marked = no_show("invitee_no_show.created", "2026-12-02T15:41:00Z", "2026-12-02T15:40:59Z")
    undone = no_show("invitee_no_show.deleted", "2026-12-02T16:05:00Z")
    for data in [marked, undone] if order == "natural" else [undone, marked]:
        [booking] = apply(data)
    assert booking.no_show_at is not None and not booking.is_no_show


def test_marked_alone_is_a_no_show_and_creates_the_booking_if_needed():
    [booking] = apply(no_show("invitee_no_show.created", "2026-12-02T15:41:00Z", "2026-12-02T15:40:59Z"))
    assert booking.is_no_show and booking.status == "scheduled"


def test_each_no_show_mark_has_its_own_key_and_invitee_keys_are_unchanged():
    from bookings.delivery_keys import dedupe_key

    first = no_show("invitee_no_show.created", "2026-12-02T15:41:00Z", "2026-12-02T15:40:59Z")
    again = no_show("invitee_no_show.created", "2026-12-02T16:20:00Z", "2026-12-02T16:19:58Z")
    again["payload"]["no_show"]["uri"] = "https://api.calendly.com/invitee_no_shows/2"
    uri = first["payload"]["uri"]
    assert (
        dedupe_key(parse_delivery_data(first))
        == f"invitee_no_show.created|{uri}|https://api.calendly.com/invitee_no_shows/1"
    )
    assert dedupe_key(parse_delivery_data(first)) != dedupe_key(parse_delivery_data(again))
    # An undo without a `no_show` is told apart by its own time (a redelivery repeats it).
    undo_1 = dedupe_key(parse_delivery_data(no_show("invitee_no_show.deleted", "2026-12-02T16:05:00Z")))
    undo_2 = dedupe_key(parse_delivery_data(no_show("invitee_no_show.deleted", "2026-12-02T16:30:00Z")))
    assert undo_1 != undo_2
    created = without_deal_id()
    assert dedupe_key(parse_delivery_data(created)) == f"invitee.created|{created['payload']['uri']}"
