"""JSON log lines carry the sync's ids; e-mails and tokens never reach the log at INFO."""

import io
import json
import logging

import pytest

from bookings import processing
from bookings.models import Booking
from bookings.webhooks import store_delivery
from calsync.logctx import log_context
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_lines():
    """What the configured console handler (settings.LOGGING) writes, one JSON object per line."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    finally:
        handler.setStream(previous)


def test_every_line_of_a_sync_carries_event_booking_and_invitee(log_lines, settings):
    settings.CALSYNC_RECONCILERS = ["tests.ops.logging_reconciler.noisy"]
    settings.KOMMO_ACCESS_TOKEN = "kommo-live-token-123"
    event_id = store_delivery(load_fixture("calendly/invitee_created.json")).data["id"]
    log_lines()  # the intake lines are not part of the sync
    processing.process_event(event_id)
    booking = Booking.objects.get()

    sync_lines = [line for line in log_lines() if line.get("event_id") == event_id]
    reconciler_lines = [line for line in sync_lines if line["logger"] == "crm.client"]
    assert len(reconciler_lines) == 2
    assert sync_lines[-1]["message"] == f"event {event_id} done"
    for line in reconciler_lines + sync_lines[-1:]:
        assert line["booking_id"] == booking.pk
        assert line["invitee_uri"] == booking.invitee_uri
        assert {"time", "level", "logger", "message"} <= set(line)
    text = json.dumps(log_lines())
    assert "lucia.fernandez@clientco.example" not in text and "l***@clientco.example" in text
    assert "kommo-live-token-123" not in text


def test_no_context_outside_a_sync(log_lines):
    logging.getLogger("calsync.test").info("hello")
    with log_context(event_id=7):
        logging.getLogger("calsync.test").info("inside")
    logging.getLogger("calsync.test").info("after")
    lines = log_lines()
    assert [line.get("event_id") for line in lines] == [None, 7, None]


def test_plain_format_appends_the_context():
    from calsync.logctx import ContextFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    with log_context(event_id=3, booking_id=9):
        ContextFilter().filter(record)
    formatter = logging.Formatter("%(levelname)s %(message)s%(log_context)s")
    assert formatter.format(record) == "INFO hello event_id=3 booking_id=9"


def test_a_short_configured_value_does_not_blank_letters(log_lines, settings):
    settings.SECRET_KEY = "x"  # a toy local key must not turn every "x" into [redacted]
    logging.getLogger("calsync.test").info("exact match")
    assert log_lines()[-1]["message"] == "exact match"
