"""How KommoClient talks to Kommo API v4: the transport under its calls.

`KommoTransport` sends one call at a time through the shared rate limit, renews a rejected token once,
decodes the answer (JSON, or None for 204) and turns Kommo's error statuses into the typed errors of
`crm/errors.py`. Retries: a 429 means Kommo did not act, so any call waits `retry_after` and tries again
(up to a limit). Reads, and PATCHes that set absolute values, are also retried on 5xx and network errors
with backoff. A POST is never re-sent after a 5xx, a timeout or a dropped connection (Kommo has no
idempotency key): `KommoUncertainWrite` tells the caller to look for its marker before writing again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import requests

from calsync.errors import PermanentSyncError
from calsync.http import parse_retry_after
from crm.errors import (
    KommoAuthError,
    KommoError,
    KommoForbidden,
    KommoIPBlocked,
    KommoNotFound,
    KommoPaymentRequired,
    KommoPermanentError,
    KommoRateLimited,
    KommoServerError,
    KommoUncertainWrite,
    KommoValidationError,
)
from crm.tokens import StaticToken, TokenProvider

logger = logging.getLogger(__name__)

PAGE_LIMIT = 250
IP_BLOCK_PAUSE = 300.0  # seconds every process stays off Kommo after a 403 "IP blocked" page


class Limiter(Protocol):
    def acquire(self) -> float: ...
    def answered(self) -> None: ...
    def pause(self, seconds: float) -> None: ...


class NoLimit:
    def acquire(self) -> float:
        return 0.0

    def answered(self) -> None:
        return None

    def pause(self, seconds: float) -> None:
        return None


def _problem_detail(response: requests.Response) -> tuple[str, dict | None]:
    try:
        body = response.json()
    except ValueError:
        return "", None
    if not isinstance(body, dict):
        return "", None
    detail = str(body.get("detail") or body.get("title") or "")[:300]
    return detail, body


class KommoTransport:
    """The connection to one Kommo account: base URL, token, session, rate limit, and how calls are retried."""

    def __init__(
        self,
        base_url: str,
        token: str | TokenProvider,
        session: requests.Session,
        rate_limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        cache: Any = None,
        users_cache_seconds: int = 3600,
        max_inline_wait: float = 10.0,
        read_backoff: Sequence[float] = (0.5, 2.0, 5.0),
        max_rate_limited_retries: int = 2,
        max_pages: int = 4,
    ):
        if not base_url or not token:
            raise PermanentSyncError(
                "Kommo is not configured: set KOMMO_BASE_URL and KOMMO_ACCESS_TOKEN, or connect Kommo in the admin"
            )
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.rate_limiter = rate_limiter or NoLimit()
        self.sleep = sleep
        self.cache = cache
        self.users_cache_seconds = users_cache_seconds
        self.max_inline_wait = max_inline_wait
        self.read_backoff = tuple(read_backoff)
        self.max_rate_limited_retries = max_rate_limited_retries
        self.max_pages = max_pages
        self.tokens: TokenProvider = StaticToken(token) if isinstance(token, str) else token

    # --- transport -----------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: Any = None, json: Any = None, repeatable: bool | None = None
    ) -> Any:
        """One API call: JSON body, or None for 204. `repeatable`: safe to send twice (default: GET only)."""
        repeatable = method == "GET" if repeatable is None else repeatable
        url = f"{self.base_url}{path}"
        failures = 0
        rate_limited = 0
        token = self.tokens.access_token()
        reauthorized = False
        while True:
            self.rate_limiter.acquire()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            try:
                try:
                    response = self.session.request(method, url, params=params, json=json, headers=headers)
                finally:
                    self.rate_limiter.answered()  # Kommo has counted it by now, whatever came back
            except requests.ConnectTimeout as exc:  # never connected: nothing was sent, even a POST is safe
                error: KommoError = KommoServerError(
                    f"Kommo {method} {path}: connect timeout ({exc.__class__.__name__})"
                )
                sent = False
            except requests.RequestException as exc:
                error = KommoServerError(f"Kommo {method} {path}: {exc.__class__.__name__}")
                sent = True
            else:
                logger.debug("kommo %s %s → %s", method, path, response.status_code)
                if response.status_code == 401 and not reauthorized:
                    # Kommo did not act on a 401, so even a POST may go again, once, with a new token.
                    reauthorized = True
                    fresh = self.tokens.rejected(token)
                    if fresh:
                        token = fresh
                        continue
                if response.status_code == 429:
                    retry_after = self._retry_after(response)
                    self.rate_limiter.pause(retry_after)
                    if retry_after <= self.max_inline_wait and rate_limited < self.max_rate_limited_retries:
                        rate_limited += 1
                        logger.warning("kommo 429 on %s %s: waiting %.1fs", method, path, retry_after)
                        self.sleep(retry_after)
                        continue
                    raise KommoRateLimited(
                        f"Kommo {method} {path}: 429 Too Many Requests", status=429, retry_after=retry_after
                    )
                if response.status_code < 500:
                    return self._parse(method, path, response, repeatable)
                detail, _ = _problem_detail(response)
                error = KommoServerError(
                    f"Kommo {method} {path}: HTTP {response.status_code} {detail}".strip(), status=response.status_code
                )
                sent = True
            if sent and not repeatable:
                raise KommoUncertainWrite(f"{error} — the write may have happened", status=error.status)
            if failures >= len(self.read_backoff):
                raise error
            self.sleep(self.read_backoff[failures])
            failures += 1

    @staticmethod
    def _retry_after(response: requests.Response) -> float:
        _, body = _problem_detail(response)
        if body and isinstance(body.get("retry_after"), (int, float)):
            return float(body["retry_after"])
        header = parse_retry_after(response.headers.get("Retry-After"))
        return header if header is not None else 1.0

    def _parse(self, method: str, path: str, response: requests.Response, repeatable: bool) -> Any:
        status = response.status_code
        where = f"Kommo {method} {path}"
        if status == 204:
            return None
        if 200 <= status < 300:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                if repeatable:
                    raise KommoServerError(
                        f"{where}: HTTP {status} with a body that is not JSON", status=status
                    ) from None
                raise KommoUncertainWrite(f"{where}: answer is not JSON — the write may have happened") from None
        detail, body = _problem_detail(response)
        if status == 401:
            raise KommoAuthError(f"{where}: 401 Unauthorized — {self.tokens.hint} ({detail})", status=status)
        if status == 402:
            raise KommoPaymentRequired(f"{where}: 402 Payment required — the Kommo account is unpaid", status=status)
        if status == 403:
            if body is None:
                self.rate_limiter.pause(IP_BLOCK_PAUSE)  # keep every process off Kommo instead of hammering
                raise KommoIPBlocked(
                    f"{where}: 403 with a non-JSON page — Kommo has probably blocked this IP for exceeding its "
                    "rate limit; contact Kommo support",
                    status=status,
                )
            raise KommoForbidden(f"{where}: 403 Forbidden ({detail})", status=status)
        if status == 404:
            raise KommoNotFound(f"{where}: 404 Not Found", status=status)
        if status in (400, 422):
            errors = (body or {}).get("validation-errors") or []
            summary = "; ".join(
                f"{e.get('path')}: {e.get('detail')}"
                for item in errors
                if isinstance(item, dict)
                for e in item.get("errors") or []
            )
            raise KommoValidationError(
                f"{where}: {status} {detail}" + (f" ({summary[:500]})" if summary else ""), status=status, errors=errors
            )
        raise KommoPermanentError(f"{where}: HTTP {status} {detail}".strip(), status=status)

    def _get_all(self, path: str, params: dict, key: str) -> list[dict]:
        items: list[dict] = []
        for page in range(1, self.max_pages + 1):
            body = self._request("GET", path, params={**params, "page": page, "limit": PAGE_LIMIT})
            if not body:
                break
            items.extend((body.get("_embedded") or {}).get(key) or [])
            if not (body.get("_links") or {}).get("next"):
                break
        return items

    @staticmethod
    def _first_id(body: Any, key: str, where: str) -> int:
        try:
            return int(body["_embedded"][key][0]["id"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise KommoUncertainWrite(f"Kommo {where}: answer without an id — the write may have happened") from None
