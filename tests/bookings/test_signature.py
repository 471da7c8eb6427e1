"""The verifier and the test signer both reproduce Calendly's published algorithm (the shared vector)."""

import pytest

from bookings.signature import (
    SignatureError,
    compute_signature,
    parse_signature_header,
    signature_header,
    verify_signature,
)
from tests.conftest import load_json

VECTOR = load_json("calendly/signature_vector.json")
BODY = VECTOR["raw_body"].encode("utf-8")
KEY = VECTOR["signing_key"]
T = int(VECTOR["timestamp"])


def test_vector_digest_is_reproduced():
    assert compute_signature(BODY, VECTOR["timestamp"], KEY) == VECTOR["expected_v1"]
    assert signature_header(BODY, KEY, T) == VECTOR["header_value"]


def test_vector_header_verifies():
    verify_signature(BODY, VECTOR["header_value"], [KEY], now=T)


@pytest.mark.parametrize("name", sorted(k for k in VECTOR["negative_cases"] if k.endswith("WRONG")))
def test_published_wrong_algorithms_are_refused(name):
    header = f"t={T},v1={VECTOR['negative_cases'][name]}"
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(BODY, header, [KEY], now=T)


def test_body_bytes_matter_reserialised_json_fails():
    import json

    reserialised = json.dumps(json.loads(BODY)).encode()  # ASCII-escaped "Lucía": different bytes
    with pytest.raises(SignatureError):
        verify_signature(reserialised, VECTOR["header_value"], [KEY], now=T)


def test_key_is_used_as_utf8_not_base64_decoded():
    import base64
    import hashlib
    import hmac

    decoded_key = base64.urlsafe_b64decode(KEY + "=")
    wrong = hmac.new(decoded_key, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        verify_signature(BODY, f"t={T},v1={wrong}", [KEY], now=T)


@pytest.mark.parametrize("skew", [181, -181, 3600, -86400])
def test_stale_or_future_timestamp_refused(skew):
    with pytest.raises(SignatureError, match="stale"):
        verify_signature(BODY, VECTOR["header_value"], [KEY], now=T + skew)


@pytest.mark.parametrize("skew", [180, -180, 0])
def test_within_tolerance_both_ways(skew):
    verify_signature(BODY, VECTOR["header_value"], [KEY], now=T + skew)


@pytest.mark.parametrize(
    "header",
    [
        VECTOR["header_value"],
        f" t={T} , v1={VECTOR['expected_v1']} ",
        f"v1={VECTOR['expected_v1']},t={T}",
        f"t={T},v1={VECTOR['expected_v1'].upper()}",
        f"t={T},v0=abc,v1={VECTOR['expected_v1']},extra",
        f"t={T},v1={'0' * 64},v1={VECTOR['expected_v1']}",
    ],
)
def test_tolerant_header_parsing(header):
    verify_signature(BODY, header, [KEY], now=T)


@pytest.mark.parametrize(
    "header,reason",
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "no valid t="),
        ("v1=abc", "no valid t="),
        ("t=abc,v1=abc", "no valid t="),
        ("t=-5,v1=abc", "no valid t="),
        (f"t={T}", "no v1="),
        (f"t={T},v1=", "no v1="),
    ],
)
def test_malformed_headers(header, reason):
    with pytest.raises(SignatureError, match=reason):
        parse_signature_header(header) if header not in (None, "") else verify_signature(BODY, header, [KEY], now=T)
    with pytest.raises(SignatureError):
        verify_signature(BODY, header, [KEY], now=T)


def test_non_ascii_digest_is_refused_not_crashing():
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(BODY, f"t={T},v1=é{'a' * 63}", [KEY], now=T)


def test_wrong_key_refused_and_rotation_accepts_either():
    with pytest.raises(SignatureError):
        verify_signature(BODY, VECTOR["header_value"], ["another-key"], now=T)
    verify_signature(BODY, VECTOR["header_value"], ["new-key", KEY], now=T)


def test_no_key_configured_refuses():
    with pytest.raises(SignatureError, match="no signing key"):
        verify_signature(BODY, VECTOR["header_value"], [], now=T)
