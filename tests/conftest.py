"""Shared fixtures: real Calendly payload files, a signer that follows Calendly's algorithm, a poster."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import time_machine
from django.test import Client

from bookings.signature import signature_header

FIXTURES = Path(__file__).parent / "fixtures"
SIGNING_KEY = "qL4x9Zr2Tn8VbK1mWc7PdS3hJf6Ye0Ug5Ra-Xo2Ni_E"
WEBHOOK_URL = "/webhooks/calendly/"

# The moment every unit test starts at. The Calendly fixtures were recorded around it: their
# bookings were made on 2026-11-24 and their meetings start between 2026-11-25 and 2026-12-03, so
# at this instant every fixture meeting lies ahead, as it did when Calendly sent it.
TEST_NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def test_clock(request: pytest.FixtureRequest) -> Iterator[time_machine.Traveller | None]:
    """Every unit test runs on a controlled clock that starts at TEST_NOW and ticks on.

    It patches `time.time`, `datetime.now`, `timezone.now` and friends (not `time.monotonic`, which
    only measures durations). A test about time passing moves it: `test_clock.shift(timedelta(...))`
    or `test_clock.move_to(...)`, never `time.sleep`. Tests marked `e2e` or `real_clock` keep the real
    clock: they talk to other processes, which cannot share a patched one.
    """
    if request.node.get_closest_marker("e2e") or request.node.get_closest_marker("real_clock"):
        yield None
        return
    with time_machine.travel(TEST_NOW, tick=True) as traveller:
        yield traveller


def load_fixture(name: str) -> bytes:
    """A fixture file's bytes, exactly: we sign raw bytes."""
    return (FIXTURES / name).read_bytes()


def load_json(name: str) -> Any:
    return json.loads(load_fixture(name))


def to_body(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def sign(body: bytes, *, key: str = SIGNING_KEY, timestamp: int | None = None) -> str:
    return signature_header(body, key, int(time.time()) if timestamp is None else timestamp)


def variant(fixture: str, /, **changes: Any) -> dict:
    """Load a Calendly fixture and change payload fields (Zulip's one-field-edit habit).

    Keys with dots reach into nested objects: ``variant(..., **{"scheduled_event.name": "X"})``.
    """
    data = load_json(fixture)
    for dotted, value in changes.items():
        target = data["payload"]
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return data


@pytest.fixture
def post_delivery(client: Client, django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """POST a body to the webhook, signed by default, running on-commit enqueues in-process."""

    def _post(body: bytes | dict, *, signature: str | bool | None = True, url: str = WEBHOOK_URL, **extra: Any):
        raw = body if isinstance(body, bytes) else to_body(body)
        headers = dict(extra)
        if signature is True:
            headers["HTTP_CALENDLY_WEBHOOK_SIGNATURE"] = sign(raw)
        elif isinstance(signature, str):
            headers["HTTP_CALENDLY_WEBHOOK_SIGNATURE"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=raw, content_type="application/json", **headers)

    return _post


@pytest.fixture
def fake_reconcilers(settings, monkeypatch: pytest.MonkeyPatch):
    """Recording reconcilers, fresh for this test, configured as the only step (`first`).

    Tests that want both steps set `settings.CALSYNC_RECONCILERS = [FIRST, SECOND]` themselves.
    """
    from tests.bookings import fake_reconcilers as module

    fakes = module.FakeReconcilers()
    monkeypatch.setattr(module, "first", fakes.first, raising=False)
    monkeypatch.setattr(module, "second", fakes.second, raising=False)
    settings.CALSYNC_RECONCILERS = [module.FIRST]
    return fakes


@pytest.fixture
def rsps():
    """Wire-level HTTP mocking; every registered response must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
