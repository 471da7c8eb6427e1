"""The foundation with real processes: gunicorn answers, qcluster processes, PostgreSQL holds it all."""

import json
import signal

from tests.conftest import load_fixture, load_json
from tests.e2e.harness import wait_for


def test_booking_cancel_duplicates_and_bad_signature(stack_factory):
    stack = stack_factory()
    created, canceled = load_fixture("calendly/invitee_created.json"), load_fixture("calendly/invitee_canceled.json")
    assert stack.post(created)[0] == 202
    assert stack.post(created)[0] == 200  # redelivery
    assert stack.post(canceled)[0] == 202
    assert stack.post(created, signed=False)[0] == 401
    assert stack.post(b"x" * (1024 * 1024 + 1))[0] == 413
    assert stack.post(created, path="/webhooks/calendly")[0] == 200  # no slash, no redirect
    assert stack.post(created, chunked=True)[0] == 200  # chunked, no Content-Length: read whole, a redelivery
    assert stack.post(b"x" * (1024 * 1024 + 1), chunked=True)[0] == 413
    stack.wait_until_settled(2)
    assert stack.query("SELECT status, invitee_email FROM bookings_booking") == [
        ("canceled", "lucia.fernandez@clientco.example")
    ]
    assert stack.query("SELECT deliveries FROM bookings_webhookevent WHERE kind = 'invitee.created'") == [(4,)]


def test_reschedule_new_half_first(stack_factory):
    stack = stack_factory()
    assert stack.post(load_fixture("calendly/reschedule_2_invitee_created_new.json"))[0] == 202
    assert stack.post(load_fixture("calendly/reschedule_1_invitee_canceled_old.json"))[0] == 202
    stack.wait_until_settled(2)
    rows = dict(stack.query("SELECT invitee_uri, status FROM bookings_booking"))
    old = load_json("calendly/reschedule_1_invitee_canceled_old.json")["payload"]["uri"]
    new = load_json("calendly/reschedule_2_invitee_created_new.json")["payload"]["uri"]
    assert rows == {old: "rescheduled", new: "scheduled"}
    linked = stack.query(
        "SELECT o.invitee_uri FROM bookings_booking n JOIN bookings_booking o ON n.rescheduled_from_id = o.id"
    )
    assert linked == [(old,)]


def test_worker_killed_then_restarted_loses_nothing(stack_factory):
    stack = stack_factory(extra_env={"CALSYNC_ENQUEUE_GRACE": "1"})
    stack.workers[0].kill(signal.SIGKILL)  # no worker at all while deliveries arrive
    body = load_json("calendly/invitee_created.json")
    ids = []
    for n in range(5):
        body["payload"]["uri"] = body["payload"]["event"] + f"/invitees/e2e-{n}"
        status, answer = stack.post(json.dumps(body).encode())
        assert status == 202
        ids.append(answer["id"])
    assert stack.event_statuses() == {"received": 5}
    stack.start_worker()
    stack.wait_until_settled(5, timeout=90)
    assert wait_for(lambda: stack.query("SELECT count(*) FROM bookings_booking")[0][0] == 5, timeout=5)
