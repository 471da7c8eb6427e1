"""JSON log lines carry the sync's ids; e-mails and tokens never reach the log at INFO."""

import io
import json
import logging

import pytest

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking
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
    event_id = store_delivery(load_fixture("calendly/invitee_created.json")).event.pk
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


# --- OAuth codes in request logs ------------------------------------------------------------------------

OAUTH_CODE = "def50200a1b2c3d4e5f6-oauth-code"
OAUTH_STATE = "st4te-9f8e7d6c5b4a"


def test_the_oauth_callback_query_never_reaches_django_request_warnings(log_lines, client, settings):
    """A refused callback logs a django.request warning whose `request` field quoted the whole query."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("ops", "ops@acme-sales.example", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="connect_kommo"))
    client.force_login(user)
    query = {"code": OAUTH_CODE, "state": OAUTH_STATE, "referer": "acme.kommo.com"}
    assert client.get("/admin/crm/kommoconnection/callback/", query).status_code == 400

    lines = log_lines()
    warning = next(line for line in lines if line["logger"] == "django.request")
    assert warning["level"] == "WARNING" and "callback" in warning["request"]
    text = json.dumps(lines)
    assert OAUTH_CODE not in text and OAUTH_STATE not in text
    assert "code=[redacted]" in warning["request"]


def gunicorn_logger(monkeypatch, log_format: str):
    from gunicorn.config import Config

    from calsync.gunicorn_logging import GunicornLogger

    monkeypatch.setenv("CALSYNC_LOG_FORMAT", log_format)
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("errorlog", "-")
    logger = GunicornLogger(cfg)
    buffer = io.StringIO()
    for log in (logger.access_log, logger.error_log):
        for handler in log.handlers:
            handler.setStream(buffer)
    return logger, buffer


def test_gunicorn_access_lines_mask_oauth_values_and_are_json(monkeypatch):
    from datetime import timedelta
    from types import SimpleNamespace

    logger, buffer = gunicorn_logger(monkeypatch, "json")
    path, query = "/admin/crm/kommoconnection/callback/", f"code={OAUTH_CODE}&state={OAUTH_STATE}&referer=acme"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"{path}?{query}",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_REFERER": f"https://calsync.example.com{path}?{query}",
    }
    resp = SimpleNamespace(status="302 Found", sent=0, headers=[("Location", "/admin/crm/kommoconnection/")])
    req = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    logger.access(resp, req, environ, timedelta(milliseconds=12))
    logger.info("Booting worker with pid: %s", 4242)

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert len(lines) == 2  # both gunicorn loggers write JSON, like calsync's own lines
    access, booting = lines
    assert access["logger"] == "gunicorn.access" and f"GET {path}?code=" in access["message"]
    assert booting["logger"] == "gunicorn.error" and booting["message"] == "Booting worker with pid: 4242"
    assert OAUTH_CODE not in buffer.getvalue() and OAUTH_STATE not in buffer.getvalue()
    assert "code=[redacted]&state=[redacted]" in access["message"]


def test_gunicorn_lines_stay_plain_when_asked(monkeypatch):
    logger, buffer = gunicorn_logger(monkeypatch, "plain")
    logger.info("Listening at: %s", "http://127.0.0.1:8000")
    assert buffer.getvalue().strip().endswith("[INFO] Listening at: http://127.0.0.1:8000")


def test_gunicorn_conf_uses_calsync_logger():
    import runpy
    from pathlib import Path

    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
    assert conf["logger_class"] == "calsync.gunicorn_logging.GunicornLogger"


def test_gunicorn_masks_oauth_values_in_the_atoms_a_custom_format_prints(monkeypatch):
    """Only printed atoms are masked (the cost of the rest was the acknowledgement's); a header atom
    named in any case in the format is masked as gunicorn looks it up."""
    from datetime import timedelta
    from types import SimpleNamespace

    logger, buffer = gunicorn_logger(monkeypatch, "plain")
    logger.cfg.set("access_log_format", '"%(r)s" %({Referer}i)s %({x-original-uri}e)s')
    query, masked = f"code={OAUTH_CODE}&state={OAUTH_STATE}", "code=[redacted]&state=[redacted]"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/cb/",
        "PATH_INFO": "/cb/",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "X-ORIGINAL-URI": f"/cb/?{query}",
    }
    resp = SimpleNamespace(status="200 OK", sent=0, headers=[])
    req = SimpleNamespace(headers=[("REFERER", f"https://calsync.example.com/cb/?{query}")])
    logger.access(resp, req, environ, timedelta(milliseconds=3))
    line = buffer.getvalue()
    assert OAUTH_CODE not in line and OAUTH_STATE not in line
    assert f"example.com/cb/?{masked}" in line and f" /cb/?{masked}" in line  # the header and the environ atom


def test_gunicorn_closes_connections_after_each_answer_unless_told(monkeypatch):
    """Calendly sends each delivery on a new connection: keep-alive would only cost a poller round."""
    import runpy
    from pathlib import Path

    path = str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py")
    monkeypatch.delenv("GUNICORN_KEEPALIVE", raising=False)
    assert runpy.run_path(path)["keepalive"] == 0
    monkeypatch.setenv("GUNICORN_KEEPALIVE", "30")
    assert runpy.run_path(path)["keepalive"] == 30
