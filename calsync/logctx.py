"""Structured logging: per-sync context on every line, and no e-mails or secrets at INFO and above.

`bookings.processing` binds `event_id`, then `invitee_uri` and `booking_id`, around each event; every log
line written inside (by calsync, requests, the Kommo and Zoom clients) carries them, whatever logger wrote
it. A ContextVar, not a thread-local, so it also holds in threads and async code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

CONTEXT_FIELDS = ("event_id", "booking_id", "invitee_uri")
_context: ContextVar[dict[str, Any] | None] = ContextVar("calsync_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block (nested blocks add to the outer ones)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Add fields for the rest of the innermost `log_context` block (e.g. the booking once it is known)."""
    _context.set({**(_context.get() or {}), **fields})


class ContextFilter(logging.Filter):
    """Copies the bound fields onto the record (JSON keys), plus `log_context` text for the plain format."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get() or {}
        for name, value in fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        record.log_context = "".join(f" {k}={v}" for k, v in fields.items() if v not in (None, ""))
        return True


_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_emails(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", text)


# OAuth values in a query string (`?code=…&state=…`, also when quoted in a Referer or a request repr):
# an authorization code can be exchanged for tokens until it is used, and `state` guards that exchange.
_QUERY_SECRETS = re.compile(
    r"(?i)((?:^|(?<=[?&;\s]))(?:code|state|access_token|refresh_token|client_secret)=)[^&\s'\"#]+"
)


def redact_query_secrets(text: str) -> str:
    return _QUERY_SECRETS.sub(r"\1[redacted]", text)


class RedactFilter(logging.Filter):
    """Masks e-mail addresses at INFO and above, and tokens and keys at every level.

    A safety net: calsync's own messages name events and bookings by id, but a library or an
    exception message may quote a URL with a token or an invitee's address.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from calsync.http import redact

        secrets = _configured_secrets()
        message = record.getMessage()
        cleaned = redact_query_secrets(redact(message, *secrets))
        if record.levelno >= logging.INFO:
            cleaned = mask_emails(cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text = redact_query_secrets(redact(record.exc_text, *secrets))
            record.exc_text = mask_emails(text) if record.levelno >= logging.INFO else text
        request = getattr(record, "request", None)  # django.request's `extra`: the JSON line prints its repr
        if request is not None and not isinstance(request, str):
            record.request = redact_query_secrets(redact(repr(request), *secrets))
        for name in ("invitee_email", "email"):  # `extra={...}` fields
            value = getattr(record, name, None)
            if isinstance(value, str) and record.levelno >= logging.INFO:
                setattr(record, name, mask_emails(value))
        return True


def _configured_secrets() -> list[str]:
    try:
        from django.conf import settings

        names = (
            *getattr(settings, "CALSYNC_SECRET_SETTINGS", []),
            "CALSYNC_METRICS_TOKEN",
            "SECRET_KEY",
            "EMAIL_HOST_PASSWORD",
        )
        values = [
            *getattr(settings, "CALENDLY_SIGNING_KEYS", []),
            *(str(getattr(settings, n, "") or "") for n in names),
        ]
    except Exception:  # settings not configured (a log line during start-up)
        return []
    # A toy value ("x" in a local shell) would blank every matching letter of every line.
    return [v for v in values if len(v) >= 8]


def json_formatter(**kwargs: Any) -> logging.Formatter:
    """python-json-logger's formatter with calsync's field names (used from settings.LOGGING)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, "log_context"],
        **kwargs,
    )
