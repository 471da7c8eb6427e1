"""The Zoom request bodies calsync builds, validated against Zoom's published Meeting API spec.

tests/fixtures/zoom/meeting_request_schema.json is the request-body schema of create and update meeting
from Zoom's OpenAPI spec (source in that folder's README). The bodies are the ones sent on the wire.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from django.core.cache import cache
from jsonschema import Draft4Validator

from tests.conferencing.test_sync import (
    CREATED,
    MEETING_URL,
    RESCHEDULE_NEW,
    RESCHEDULE_OLD,
    create_old_meeting,
    custom_location,
    deliver,
    expect_create,
    warm_caches,
)
from tests.conftest import load_json

pytestmark = pytest.mark.django_db

SPEC = load_json("zoom/meeting_request_schema.json")
# Zoom's start_time description: "To set a meeting's start time in GMT, use the yyyy-MM-ddTHH:mm:ssZ".
GMT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(autouse=True)
def zoom(zoom_settings):
    cache.clear()
    return zoom_settings


def closed(schema: dict) -> dict:
    """The spec's schema, refusing keys it does not name (at the top and in `settings`)."""
    schema = copy.deepcopy(schema)
    schema["additionalProperties"] = False
    schema["properties"]["settings"]["additionalProperties"] = False
    return schema


def assert_valid(operation: str, body: dict) -> None:
    validator = Draft4Validator(closed(SPEC[operation]["schema"]))
    errors = [f"{'.'.join(map(str, e.path)) or '(body)'}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == [], errors
    assert GMT.match(body["start_time"]), body["start_time"]


def test_the_vendored_fragment_is_the_create_and_update_operations():
    assert (SPEC["create"]["operationId"], SPEC["create"]["method"]) == ("meetingCreate", "POST")
    assert (SPEC["update"]["operationId"], SPEC["update"]["method"]) == ("meetingUpdate", "PATCH")


def test_the_validator_refuses_what_the_spec_does_not_allow():
    # The check has teeth: too-long topic, wrong enums, unknown keys (top level and in settings) all fail.
    validator = Draft4Validator(closed(SPEC["create"]["schema"]))
    bad = {"topic": "x" * 201, "type": 5, "settings": {"auto_recording": "always", "waitingroom": True}, "host": "a"}
    assert len(list(validator.iter_errors(bad))) == 5


@pytest.mark.parametrize("recording", ["none", "cloud", "local"])
def test_the_create_body_matches_zooms_request_schema(rsps, settings, recording):
    settings.ZOOM_AUTO_RECORDING = recording
    warm_caches()
    expect_create(rsps, json=CREATED)
    assert deliver(custom_location(load_json("calendly/invitee_created.json"))).status == "done"
    (call,) = [c for c in rsps.calls if c.request.method == "POST"]
    assert_valid("create", json.loads(call.request.body))


def test_the_update_body_of_a_reschedule_matches_zooms_request_schema(rsps):
    create_old_meeting(rsps)
    assert_valid("create", json.loads(rsps.calls[0].request.body))
    rsps.patch(MEETING_URL, status=204)
    deliver(RESCHEDULE_OLD)
    assert deliver(RESCHEDULE_NEW).status == "done"
    (call,) = [c for c in rsps.calls if c.request.method == "PATCH"]
    assert_valid("update", json.loads(call.request.body))
