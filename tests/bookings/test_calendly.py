"""Parsing real Calendly deliveries into typed, immutable structures."""

import dataclasses
from datetime import UTC, datetime

import pytest

from bookings.calendly import parse_delivery, parse_delivery_data, parse_location
from bookings.calendly_json import PayloadError
from bookings.delivery_keys import dedupe_key
from tests.conftest import load_fixture, load_json, to_body, variant


def test_invitee_created_parses_every_field_we_use():
    d = parse_delivery(load_fixture("calendly/invitee_created.json"))
    inv, ev = d.invitee, d.scheduled_event
    assert d.kind == "invitee.created"
    assert inv.uri.endswith("/invitees/b7e1c9d2-4a3f-4e8b-8c1d-5f6a7b8c9d0e")
    assert inv.event_uri == ev.uri
    assert inv.email == "lucia.fernandez@clientco.example"
    assert inv.name == "Lucía Fernández"
    assert inv.timezone == "Europe/Madrid"
    assert ev.start_time == datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    assert ev.end_time == datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
    assert ev.name == "30-min Product Demo"
    assert ev.primary_host.email == "marta.ruiz@acme-sales.example"
    assert ev.guest_emails == ("pablo.garcia@clientco.example",)
    assert ev.location.type == "zoom" and ev.location.calendly_owns_conference
    assert ev.location.conference_id == "85512345678"  # a number in the JSON, a string here
    assert [q.position for q in inv.questions] == [0, 1, 3]  # the gap at 2 is kept
    assert inv.questions[2].answer == "18734521"
    assert inv.tracking == {"utm_campaign": "q4-demo", "utm_source": "newsletter", "utm_medium": "email"}
    assert inv.cancellation is None and inv.rescheduled is False


def test_structures_are_immutable():
    d = parse_delivery(load_fixture("calendly/invitee_created.json"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.invitee.email = "x@y.z"


def test_cancel_reads_cancellation_from_the_top_of_the_payload():
    inv = parse_delivery(load_fixture("calendly/invitee_canceled.json")).invitee
    assert inv.cancellation.canceled_by == "Marta Ruiz"
    assert inv.cancellation.canceler_type == "host"
    assert inv.cancellation.reason == "Client asked to move the demo to January"


def test_cancellation_only_inside_scheduled_event_is_found():
    data = load_json("calendly/invitee_canceled.json")
    del data["payload"]["cancellation"]
    assert parse_delivery_data(data).invitee.cancellation.canceled_by == "Marta Ruiz"


def test_reschedule_links():
    old = parse_delivery(load_fixture("calendly/reschedule_1_invitee_canceled_old.json")).invitee
    new = parse_delivery(load_fixture("calendly/reschedule_2_invitee_created_new.json")).invitee
    assert old.rescheduled and old.new_invitee_uri == new.uri
    assert new.old_invitee_uri == old.uri and not new.rescheduled
    assert old.cancellation.reason is None


@pytest.mark.parametrize("name", sorted(load_json("calendly/location_variants.json").keys() - {"_note"}))
def test_every_location_variant_parses(name):
    raw = load_json("calendly/location_variants.json")[name]["location"]
    loc = parse_location(raw, "location")
    expected_owned = name.startswith(("zoom", "google", "microsoft", "webex", "gotomeeting"))
    assert loc.calendly_owns_conference is expected_owned


def test_zoom_conference_spelling_and_string_id():
    loc = parse_location(
        {"type": "zoom_conference", "join_url": None, "status": "processing", "data": {"id": "9"}}, "x"
    )
    assert loc.calendly_owns_conference and loc.conference_id == "9" and loc.join_url is None


def test_unknown_keys_and_nulls_are_tolerated():
    data = variant(
        "calendly/invitee_created.json",
        brand_new_field={"x": 1},
        first_name=None,
        timezone=None,
        tracking=None,
        questions_and_answers=None,
        **{"scheduled_event.location": None, "scheduled_event.event_memberships": None},
    )
    d = parse_delivery_data(data)
    assert d.invitee.timezone is None and d.invitee.questions == () and d.invitee.tracking == {}
    assert d.scheduled_event.location.type is None and d.scheduled_event.primary_host is None


def test_dedupe_key_is_kind_and_invitee_never_event():
    created = parse_delivery(load_fixture("calendly/invitee_created.json"))
    canceled = parse_delivery(load_fixture("calendly/invitee_canceled.json"))
    assert dedupe_key(created) != dedupe_key(canceled)
    other_invitee = parse_delivery_data(
        variant("calendly/invitee_created.json", uri=created.invitee.event_uri + "/invitees/OTHER")
    )
    assert dedupe_key(other_invitee) != dedupe_key(created)  # same event URI, another invitee


@pytest.mark.parametrize(
    "body,path",
    [
        (b"not json", "$"),
        (b"\xff\xfe", "$"),
        (b"[1, 2]", "$"),
        (to_body({"payload": {}}), "$.event"),
        (to_body({"event": "invitee.created"}), "$.payload"),
        (to_body(variant("calendly/invitee_created.json", uri=None)), "$.payload.uri"),
        (to_body(variant("calendly/invitee_created.json", email="nobody")), "$.payload.email"),
        # Without the embedded event, its URI in `event` is what processing reads it by.
        (to_body(variant("calendly/invitee_created.json", scheduled_event=None, event=None)), "$.payload.event"),
        (
            to_body(variant("calendly/invitee_created.json", **{"scheduled_event.start_time": "tomorrow"})),
            "$.payload.scheduled_event.start_time",
        ),
        (
            to_body(variant("calendly/invitee_created.json", **{"scheduled_event.end_time": "2020-01-01T00:00:00Z"})),
            "$.payload.scheduled_event.end_time",
        ),
        (to_body(variant("calendly/invitee_created.json", email=["a@b.c"])), "$.payload.email"),
    ],
)
def test_payload_errors_name_the_path(body, path):
    with pytest.raises(PayloadError) as info:
        parse_delivery(body)
    assert info.value.path == path


def test_non_invitee_kinds_parse_only_the_envelope():
    d = parse_delivery_data({"event": "routing_form_submission.created", "payload": {"uri": "https://x/1"}})
    assert d.invitee is None and d.payload_uri == "https://x/1"
