"""The sender's deliveries are shaped like the real fixtures, verify, parse, and go out as signed raw bytes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bookings.calendly import parse_delivery
from bookings.signature import HEADER, verify_signature
from sandbox import calendly_sender as cs
from tests.conftest import SIGNING_KEY, load_json

NOW = datetime(2026, 11, 24, 9, 14, 4, tzinfo=UTC)
START = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def keys(data: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document (list items merged), to compare shapes, not values."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            found.add(prefix + key)
            found |= keys(value, prefix + key + ".")
    elif isinstance(data, list):
        for item in data:
            found |= keys(item, prefix + "[].")
    return found


def sample(**fields) -> cs.Booking:
    return cs.booking(start=START, now=NOW, rng=random.Random(1), **fields)


def roundtrip(delivery: dict) -> Any:
    body = cs.encode(delivery)
    headers = cs.signed_headers(body, SIGNING_KEY, int(NOW.timestamp()))
    verify_signature(body, headers[HEADER], [SIGNING_KEY], now=NOW.timestamp())
    return parse_delivery(body)


def test_created_has_exactly_the_fixture_shape():
    fixture = load_json("calendly/invitee_created.json")
    built = cs.created(sample(location_type="zoom", guests=("pablo@clientco.example",)), at=NOW)
    assert keys(built) - keys(fixture) == set()
    assert keys(fixture) - keys(built) == set()


def test_canceled_and_reschedule_halves_have_the_fixture_shapes():
    zoom_with_guest = sample(location_type="zoom", guests=("pablo@clientco.example",))
    assert keys(cs.canceled(zoom_with_guest, at=NOW)) == keys(load_json("calendly/invitee_canceled.json"))
    old = sample()
    new, old_half, new_half = cs.reschedule(old, START + timedelta(days=1), at=NOW, rng=random.Random(2))
    assert keys(old_half) == keys(load_json("calendly/reschedule_1_invitee_canceled_old.json"))
    assert keys(new_half) == keys(load_json("calendly/reschedule_2_invitee_created_new.json"))
    assert old_half["payload"]["rescheduled"] is True and old_half["payload"]["new_invitee"] == new.uri
    assert new_half["payload"]["old_invitee"] == old.uri and new_half["payload"]["rescheduled"] is False
    assert new.event_uri != old.event_uri and new.uri != old.uri


@pytest.mark.parametrize("location_type", [None, "zoom", "zoom_conference", "google_conference", "physical", "custom"])
def test_every_delivery_verifies_and_parses(location_type):
    booking = sample(location_type=location_type)
    new, old_half, new_half = cs.reschedule(booking, START + timedelta(days=1), at=NOW)
    for delivery in (cs.created(booking, at=NOW), cs.canceled(booking, at=NOW), old_half, new_half):
        parsed = roundtrip(delivery)
        assert parsed.kind == delivery["event"] and parsed.invitee.email == booking.email
        assert parsed.scheduled_event.location.type == location_type
    created = roundtrip(cs.created(booking, at=NOW))
    assert created.scheduled_event.start_time == START
    assert created.scheduled_event.location.calendly_owns_conference is (
        location_type in ("zoom", "zoom_conference", "google_conference")
    )
    assert roundtrip(old_half).invitee.new_invitee_uri == new.uri
    assert roundtrip(cs.canceled(booking, at=NOW, reason="Busy")).invitee.cancellation.reason == "Busy"


def test_group_event_invitees_share_the_event_but_not_the_invitee_uri():
    invitees = [("a@x.example", "Ann A"), ("b@x.example", "Bob B"), ("c@x.example", "Cy C")]
    members = cs.group(sample(), invitees, rng=random.Random(3))
    parsed = [roundtrip(cs.created(m, at=NOW)) for m in members]
    assert len({p.invitee.event_uri for p in parsed}) == 1 and len({p.invitee.uri for p in parsed}) == 3
    one_left = cs.canceled(members[0], at=NOW, still_active=2)["payload"]["scheduled_event"]
    assert one_left["status"] == "active" and one_left["invitees_counter"] == {"total": 3, "active": 2, "limit": 3}


def test_plan_duplicates_after_the_first_copy_and_shuffles_reproducibly():
    sequences = [[{"n": i, "step": s} for s in ("create", "cancel")] for i in range(20)]
    doubled = cs.plan(sequences, rng=random.Random(5), duplicate_rate=1.0)
    assert len(doubled) == 80
    for delivery in [d for seq in sequences for d in seq]:
        positions = [i for i, d in enumerate(doubled) if d is delivery]
        assert len(positions) == 2
    assert cs.plan(sequences) == [d for seq in sequences for d in seq]  # no options, no change
    shuffled = cs.plan(sequences, rng=random.Random(9), shuffle_within=True)
    assert shuffled == cs.plan(sequences, rng=random.Random(9), shuffle_within=True)
    assert any(shuffled[2 * i]["step"] == "cancel" for i in range(20))  # some cancels now come first
    assert all({shuffled[2 * i]["n"], shuffled[2 * i + 1]["n"]} == {i} for i in range(20))  # pairs stay together


def test_sender_posts_the_signed_raw_bytes(rsps):
    url = "http://calsync.test/webhooks/calendly/"
    rsps.post(url, json={"id": 1, "status": "received"}, status=202)
    rsps.post(url, body="nope", status=401)
    slept: list[float] = []
    sender = cs.CalendlySender(url, SIGNING_KEY, clock=lambda: NOW.timestamp(), sleep=slept.append)
    deliveries = [cs.created(sample(), at=NOW), cs.canceled(sample(), at=NOW)]
    results = sender.send_all(deliveries, delay_s=0.25)
    assert [(r.status, r.ok, r.kind) for r in results] == [
        (202, True, "invitee.created"),
        (401, False, "invitee.canceled"),
    ]
    assert slept == [0.25]
    sent = rsps.calls[0].request
    assert sent.body == cs.encode(deliveries[0])
    verify_signature(sent.body, sent.headers[HEADER], [SIGNING_KEY], now=NOW.timestamp())


def test_sender_reports_a_dead_endpoint_instead_of_raising():
    sender = cs.CalendlySender("http://127.0.0.1:9/webhooks/calendly/", SIGNING_KEY)
    result = sender.send(cs.created(sample(), at=NOW))
    assert result.status is None and not result.ok and "ConnectionError" in result.answer
