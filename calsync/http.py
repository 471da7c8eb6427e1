"""The one place where outbound HTTP sessions are made (allauth's habit), plus header helpers."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from datetime import UTC, datetime

import requests

DEFAULT_TIMEOUT = (5.0, 20.0)  # (connect, read) seconds
USER_AGENT = "calsync/1.0 (+self-hosted Calendly to Kommo and Zoom sync)"

# Called with (service, status) after every call of a session made with `service`. The project's
# AppConfig adds the /metrics counter (`calsync.metrics.observe_api_call`), so the clients that use
# these sessions import no models.
_api_call_observers: list[Callable[[str, int | str], None]] = []


def on_api_call(observer: Callable[[str, int | str], None]) -> None:
    """Have `observer(service, status)` called after every counted call (once, however often added)."""
    if observer not in _api_call_observers:
        _api_call_observers.append(observer)


def _observe(service: str, status: int | str) -> None:
    for observer in _api_call_observers:
        observer(service, status)


class TimeoutSession(requests.Session):
    """A requests.Session that never waits forever: every call gets a timeout unless one is given.

    With `service` set, every call is also reported to the `on_api_call` observers (the /metrics counter):
    the HTTP status, or "timeout" / "error" when no answer came. Counting here, in the one place
    sessions are made, covers every call a client makes (token requests too) without a line in each client.
    """

    def __init__(self, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, *, service: str | None = None):
        super().__init__()
        self.default_timeout = timeout
        self.service = service
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        if self.service is None:
            return super().request(method, url, **kwargs)
        try:
            response = super().request(method, url, **kwargs)
        except requests.Timeout:
            _observe(self.service, "timeout")
            raise
        except requests.RequestException:
            _observe(self.service, "error")
            raise
        _observe(self.service, response.status_code)
        return response


def build_session(
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, *, service: str | None = None
) -> requests.Session:
    """A session with default timeouts; `service` ("kommo", "zoom", "calendly") counts its calls for /metrics."""
    return TimeoutSession(timeout, service=service)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds, an HTTP date, or an ISO datetime.

    Zoom's daily-limit 429 sends an ISO datetime, which urllib3's own parser rejects.
    """
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    now = now or datetime.now(UTC)
    when: datetime | None = None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


_SECRETISH = re.compile(
    r"(?i)(bearer\s+|token=|(?:access|refresh)_token\"?\s*[:=]\s*\"?|secret\"?\s*[:=]\s*\"?)[^\s\",&]+"
)


def redact(text: str, *secrets: str) -> str:
    """Remove given secret values and anything that looks like a bearer token from a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _SECRETISH.sub(lambda m: m.group(1) + "[redacted]", text)
