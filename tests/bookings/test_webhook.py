"""The webhook endpoint, driven with the real fixture payloads over the real URL."""

import json
import logging
import time

import pytest
from django.test import Client

from bookings.models import Booking, WebhookEvent
from bookings.state import HANDLERS
from tests.conftest import FIXTURES, SIGNING_KEY, WEBHOOK_URL, load_fixture, load_json, sign, to_body, variant

pytestmark = pytest.mark.django_db


def delivery_fixtures() -> dict[str, str]:
    """Every Calendly delivery in tests/fixtures/calendly/ (file → its `event` kind), found, not listed.

    A delivery is a JSON object with `event` and `payload`; the other files there (location variants,
    the signature vector) are not deliveries.
    """
    found = {}
    for path in sorted((FIXTURES / "calendly").glob("*.json")):
        data = json.loads(path.read_bytes())
        if isinstance(data, dict) and {"event", "payload"} <= data.keys():
            found[f"calendly/{path.name}"] = data["event"]
    return found


CALENDLY_FILES = [name for name, kind in delivery_fixtures().items() if kind in HANDLERS]


def test_every_handled_kind_has_a_fixture():
    """A new kind in the dispatch table cannot land without a recorded-shape delivery of it."""
    kinds_with_fixture = set(delivery_fixtures().values())
    assert set(HANDLERS) - kinds_with_fixture == set()


@pytest.mark.parametrize("name", CALENDLY_FILES)
def test_every_fixture_is_accepted_stored_and_processed(post_delivery, name):
    raw = load_fixture(name)
    response = post_delivery(raw)
    assert response.status_code == 202, response.content
    event = WebhookEvent.objects.get(pk=response.json()["id"])
    assert bytes(event.raw_body) == raw  # byte-exact
    assert event.payload == json.loads(raw)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.DONE  # sync task mode ran the on-commit enqueue
    assert event.booking.invitee_uri == event.invitee_uri


def test_answer_is_202_with_id_and_processing_is_enqueued_on_commit(client, django_capture_on_commit_callbacks):
    raw = load_fixture("calendly/invitee_created.json")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            WEBHOOK_URL, raw, content_type="application/json", HTTP_CALENDLY_WEBHOOK_SIGNATURE=sign(raw)
        )
    assert response.status_code == 202
    assert response.json() == {"id": WebhookEvent.objects.get().pk, "status": "received"}
    assert len(callbacks) == 1  # the enqueue waits for the commit
    assert WebhookEvent.objects.get().status == "received"


@pytest.mark.parametrize("url", [WEBHOOK_URL, WEBHOOK_URL.rstrip("/")])
def test_both_url_forms_answer_without_redirect(post_delivery, url):
    response = post_delivery(load_fixture("calendly/invitee_created.json"), url=url)
    assert response.status_code == 202


@pytest.mark.parametrize("url", [WEBHOOK_URL, WEBHOOK_URL.rstrip("/")])
def test_get_is_405_never_a_redirect(client, url):
    response = client.get(url)
    assert response.status_code == 405


def test_no_redirect_even_with_ssl_redirect_on(settings, post_delivery):
    settings.SECURE_SSL_REDIRECT = True
    response = post_delivery(load_fixture("calendly/invitee_created.json"))
    assert response.status_code == 202


def test_redelivery_answers_200_with_same_id_and_enqueues_nothing(
    post_delivery, django_capture_on_commit_callbacks, client
):
    raw = load_fixture("calendly/invitee_created.json")
    first = post_delivery(raw)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        second = client.post(
            WEBHOOK_URL, raw, content_type="application/json", HTTP_CALENDLY_WEBHOOK_SIGNATURE=sign(raw)
        )
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"] and second.json()["duplicate"] is True
    assert callbacks == []
    event = WebhookEvent.objects.get()
    assert event.deliveries == 2


def test_redelivery_with_other_bytes_is_still_a_duplicate(post_delivery):
    data = load_json("calendly/invitee_created.json")
    post_delivery(data)
    again = post_delivery(json.dumps(data, indent=2).encode())  # same event, re-serialised differently
    assert again.status_code == 200 and WebhookEvent.objects.count() == 1


def test_group_event_two_invitees_two_events_two_bookings(post_delivery):
    first = load_json("calendly/invitee_created.json")
    second = variant(
        "calendly/invitee_created.json",
        uri=first["payload"]["event"] + "/invitees/second-invitee",
        email="second@clientco.example",
        name="Second Person",
    )
    assert post_delivery(first).status_code == 202
    assert post_delivery(second).status_code == 202
    assert WebhookEvent.objects.count() == 2
    assert Booking.objects.filter(event_uri=first["payload"]["event"]).count() == 2


# --- signature failures: 401 and nothing stored --------------------------------------------------------


def _bad_signatures():
    raw = load_fixture("calendly/invitee_created.json")
    vector = load_json("calendly/signature_vector.json")
    now = int(time.time())
    good_for_other = sign(raw + b" ")
    return {
        "missing": None,
        "empty": "",
        "malformed": "nonsense",
        "no-v1": f"t={now}",
        "wrong-key": sign(raw, key="not-the-key"),
        "stale": sign(raw, timestamp=now - 181),
        "future": sign(raw, timestamp=now + 181),
        "body-changed-after-signing": good_for_other,
        "v1-colon-prefix": f"t={now},v1="
        + __import__("hmac").new(SIGNING_KEY.encode(), f"v1:{now}.".encode() + raw, "sha256").hexdigest(),
        "body-only": f"t={now},v1=" + __import__("hmac").new(SIGNING_KEY.encode(), raw, "sha256").hexdigest(),
        "vector-wrong-1": f"t={now},v1={vector['negative_cases']['claim_v1_colon_prefix_signed_string__WRONG']}",
    }


@pytest.mark.parametrize("case", sorted(_bad_signatures()))
def test_bad_signature_is_401_and_stores_nothing(client, case, caplog):
    raw = load_fixture("calendly/invitee_created.json")
    header = _bad_signatures()[case]
    extra = {} if header is None else {"HTTP_CALENDLY_WEBHOOK_SIGNATURE": header}
    with caplog.at_level(logging.INFO):
        response = client.post(WEBHOOK_URL, raw, content_type="application/json", **extra)
    assert response.status_code == 401
    assert "invalid signature" in response.json()["error"]
    assert WebhookEvent.objects.count() == 0 and Booking.objects.count() == 0
    assert SIGNING_KEY not in caplog.text and "lucia.fernandez" not in caplog.text
    assert SIGNING_KEY not in response.content.decode()


def test_the_published_vector_is_accepted_at_its_own_time(client, monkeypatch):
    vector = load_json("calendly/signature_vector.json")
    monkeypatch.setattr("bookings.webhooks.time.time", lambda: int(vector["timestamp"]) + 5)
    response = client.post(
        WEBHOOK_URL,
        vector["raw_body"].encode(),
        content_type="application/json",
        HTTP_CALENDLY_WEBHOOK_SIGNATURE=vector["header_value"],
    )
    assert response.status_code == 202


def test_csrf_enforcing_client_is_not_blocked():
    client = Client(enforce_csrf_checks=True)
    raw = load_fixture("calendly/invitee_created.json")
    response = client.post(WEBHOOK_URL, raw, content_type="application/json", HTTP_CALENDLY_WEBHOOK_SIGNATURE=sign(raw))
    assert response.status_code == 202


def test_no_signing_key_refuses_everything(settings, client):
    settings.CALENDLY_SIGNING_KEYS = []
    raw = load_fixture("calendly/invitee_created.json")
    response = client.post(WEBHOOK_URL, raw, content_type="application/json", HTTP_CALENDLY_WEBHOOK_SIGNATURE=sign(raw))
    assert response.status_code == 503
    assert "CALENDLY_SIGNING_KEY" in response.json()["error"]
    assert WebhookEvent.objects.count() == 0


def test_allow_unsigned_accepts_without_header_when_no_key(settings, post_delivery):
    settings.CALENDLY_SIGNING_KEYS = []
    settings.CALENDLY_ALLOW_UNSIGNED = True
    assert post_delivery(load_fixture("calendly/invitee_created.json"), signature=False).status_code == 202


def test_allow_unsigned_never_bypasses_a_configured_key(settings, post_delivery):
    settings.CALENDLY_ALLOW_UNSIGNED = True
    assert post_delivery(load_fixture("calendly/invitee_created.json"), signature=False).status_code == 401


def test_system_check_warns_without_key(settings):
    from calsync.checks import check_signing_key

    settings.CALENDLY_SIGNING_KEYS = []
    assert [w.id for w in check_signing_key(None)] == ["calsync.W001"]
    settings.CALENDLY_ALLOW_UNSIGNED = True
    assert [w.id for w in check_signing_key(None)] == ["calsync.W002"]


# --- bad bodies ------------------------------------------------------------------------------------


def test_oversized_body_is_413_and_stores_nothing(post_delivery):
    raw = b'{"event":"invitee.created","payload":{"pad":"' + b"x" * (1024 * 1024) + b'"}}'
    response = post_delivery(raw)
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0


def test_oversized_body_without_content_length_is_413(settings, rf):
    from bookings.webhooks import CalendlyWebhookView

    settings.CALENDLY_MAX_BODY_BYTES = 100
    raw = b"x" * 500
    request = rf.post(WEBHOOK_URL, raw, content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request.META["HTTP_CALENDLY_WEBHOOK_SIGNATURE"] = sign(raw)
    assert CalendlyWebhookView.as_view()(request).status_code == 413


@pytest.mark.parametrize(
    "raw",
    [
        b"this is not json",
        b"\xff\xfe\x00binary",
        b"[]",
        to_body({"event": "invitee.created", "payload": {"uri": "https://api.calendly.com/x"}}),
    ],
)
def test_signed_but_unusable_is_stored_failed_and_400(post_delivery, raw):
    response = post_delivery(raw)
    assert response.status_code == 400
    body = response.json()
    assert "not a usable Calendly delivery" in body["error"]
    event = WebhookEvent.objects.get(pk=body["id"])
    assert event.status == WebhookEvent.Status.FAILED
    assert bytes(event.raw_body) == raw
    assert event.last_error
    # A redelivery of the same bad body does not pile up rows.
    assert post_delivery(raw).json()["id"] == event.pk
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize("kind", ["routing_form_submission.created", "something.new"])
def test_unknown_kinds_are_stored_ignored_and_200(post_delivery, kind):
    data = {
        "created_at": "2026-11-24T09:14:04.000000Z",
        "event": kind,
        "payload": {"uri": "https://api.calendly.com/x/1"},
    }
    response = post_delivery(data)
    assert response.status_code == 200
    event = WebhookEvent.objects.get(pk=response.json()["id"])
    assert event.status == WebhookEvent.Status.IGNORED and kind in event.last_error
    assert Booking.objects.count() == 0
