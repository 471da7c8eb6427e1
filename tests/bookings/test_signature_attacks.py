"""Attacks on the signature header: never a 500, and never the signing key on an error page."""

import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter, technical_500_response

import bookings.signature
from bookings.models import WebhookEvent
from bookings.signature import SignatureError, parse_signature_header
from bookings.webhooks import CalendlyWebhookView
from tests.conftest import SIGNING_KEY, WEBHOOK_URL, load_fixture

BODY = load_fixture("calendly/invitee_created.json")
V1 = "0" * 64


@pytest.mark.parametrize(
    "timestamp",
    [
        "²",  # str.isdigit() says yes, int() says no
        "١٢٣",  # Arabic-Indic digits: int() reads them as 123
        "１７６４",  # full-width digits
        "9" * 5000,  # int() refuses over 4300 digits
        "1" * 13,
        "",
        "-1",
        "+1764000000",
        "1764000000.5",
    ],
)
def test_timestamp_must_be_a_few_ascii_digits(timestamp):
    with pytest.raises(SignatureError, match="no valid t="):
        parse_signature_header(f"t={timestamp},v1={V1}")


@pytest.mark.django_db
@pytest.mark.parametrize("timestamp", ["²", "١٢٣", "9" * 5000, "٩" * 20])
def test_attack_headers_get_401_and_store_nothing(post_delivery, timestamp):
    response = post_delivery(BODY, signature=f"t={timestamp},v1={V1}")
    assert response.status_code == 401
    assert "no valid t=" in response.json()["error"]
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_debug_error_page_of_the_verify_path_does_not_show_the_key(settings, monkeypatch):
    """Whatever breaks inside verification, the technical 500 page (DEBUG on) lists no signing key."""
    settings.DEBUG = True

    def broken(*args, **kwargs):
        raise RuntimeError("boom inside the HMAC")

    monkeypatch.setattr(bookings.signature.hmac, "compare_digest", broken)
    request = RequestFactory().post(
        WEBHOOK_URL, BODY, content_type="application/json", HTTP_CALENDLY_WEBHOOK_SIGNATURE=f"t=1764000000,v1={V1}"
    )
    monkeypatch.setattr(bookings.webhooks.time, "time", lambda: 1764000000.0)
    try:
        CalendlyWebhookView.as_view()(request)
    except RuntimeError:
        exc_info = sys.exc_info()
    else:
        pytest.fail("the broken HMAC did not raise")
    reporter = ExceptionReporter(request, *exc_info)
    frames = {frame["function"]: dict(frame["vars"]) for frame in reporter.get_traceback_frames()}
    assert "verify_signature" in frames and "post" in frames  # the frames are on the page…
    page = technical_500_response(request, *exc_info).content.decode()
    text = reporter.get_traceback_text()
    assert "boom inside the HMAC" in page
    for shown in (page, text, repr(frames)):  # …but never the key, nor the digest it makes
        assert SIGNING_KEY not in shown
    assert frames["verify_signature"]["keys"] == frames["post"]["keys"] == "********************"
