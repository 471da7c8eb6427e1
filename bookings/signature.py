"""Calendly webhook signature verification. Pure: no settings, no clock of its own (Django only marks the
secrets so error pages never show them).

Header: ``Calendly-Webhook-Signature: t=<unix seconds>,v1=<lowercase hex>``.
``v1 = hex(HMAC-SHA256(key = signing key's UTF-8 bytes, msg = t + "." + raw body bytes))``.
There is no ``"v1:"`` prefix in the signed string (a widely copied mistake), and the body is the raw
request bytes, never re-serialised JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from django.views.decorators.debug import sensitive_variables

HEADER = "Calendly-Webhook-Signature"
DEFAULT_TOLERANCE_S = 180
# Unix seconds in ASCII digits only: `str.isdigit()` also accepts "²" or "١٢٣", which `int()` refuses
# or reads as another number. Twelve digits reach the year 33658; more is not a time, only work.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class SignatureError(Exception):
    """The delivery is not provably from Calendly. `reason` is safe to log and to return."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@sensitive_variables("key")
def compute_signature(raw_body: bytes, timestamp: str, key: str) -> str:
    """The lowercase hex v1 value Calendly computes for this body and timestamp."""
    return hmac.new(key.encode("utf-8"), timestamp.encode("ascii") + b"." + raw_body, hashlib.sha256).hexdigest()


def signature_header(raw_body: bytes, key: str, timestamp: int) -> str:
    """A header value as Calendly sends it (for tests, the sandbox sender and the emulators)."""
    return f"t={timestamp},v1={compute_signature(raw_body, str(timestamp), key)}"


def parse_signature_header(header: str | None) -> tuple[str, list[str]]:
    """Split ``t=…,v1=…`` leniently: spaces, extra parts and several v1 values are tolerated."""
    if header is None or not header.strip():
        raise SignatureError("missing Calendly-Webhook-Signature header")
    timestamp: str | None = None
    digests: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        if name == "t":
            timestamp = value
        elif name == "v1" and value:
            digests.append(value.lower())
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("malformed signature header: no valid t= timestamp")
    if not digests:
        raise SignatureError("malformed signature header: no v1= signature")
    return timestamp, digests


# Error pages and reports list a frame's local variables: never the signing keys (see calsync.debug).
@sensitive_variables("keys", "key", "expected")
def verify_signature(
    raw_body: bytes,
    header: str | None,
    keys: Sequence[str],
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise SignatureError unless `header` signs `raw_body` with one of `keys` within the tolerance.

    The tolerance applies both ways (a clock ahead of ours is as suspect as a replay of an old one).
    Every key is compared in constant time so the response time says nothing about which one was close.
    """
    if not keys:
        raise SignatureError("no signing key configured")
    timestamp, digests = parse_signature_header(header)
    if abs(now - int(timestamp)) > tolerance_s:
        raise SignatureError("stale signature timestamp (outside the allowed clock skew)")
    matched = False
    for key in keys:
        expected = compute_signature(raw_body, timestamp, key).encode("ascii")
        for digest in digests:
            # Bytes, not str: compare_digest refuses non-ASCII str, and a header may carry anything.
            matched |= hmac.compare_digest(expected, digest.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("signature does not match")
