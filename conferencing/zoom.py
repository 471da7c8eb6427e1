"""A thin client for Zoom's REST API v2 with Server-to-Server OAuth (see docs/conferencing.md).

Why our own: no Python library gets the parts that matter right (a token shared by every process,
renew-once on code 124, Zoom's ISO `Retry-After`, code-based errors, UTC start times). The client takes
URLs, credentials, session and token store as arguments and never reads Django settings; only
`from_settings()` does. Secrets (client secret, tokens, start URLs) never go into logs or error messages.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

import requests

from calsync.errors import PermanentSyncError, SyncError
from calsync.http import build_session, parse_retry_after, redact

logger = logging.getLogger(__name__)

RENEW_MARGIN = 300  # seconds before expiry at which a cached token is renewed
LOCK_POLL = 0.25  # seconds between looks at the store while another process renews
LOCK_POLLS = 40  # ≈10 s of waiting for another process's renewal before fetching our own
BACKOFF = (1.0, 3.0)  # sleeps before the 2nd and 3rd try of a read, update or delete
MAX_QPS_WAIT = 5.0  # a per-second 429 asking for longer than this is handed back to the pipeline

# Zoom error codes (match on these, never on the localized message).
CODE_INVALID_TOKEN = 124
# "A maximum of {n} meetings can be created/updated for a single user in one day" (Zoom's Meeting API
# spec, create and update meeting). Seen as 429 and as 400; the same number also names two request
# mistakes calsync never makes (schedule_for, enforce_login_domains), and field validation comes with
# an `errors` list, so on a create or update without one it is the host's daily cap.
CODE_DAILY_MEETING_CAP = 300
CODE_USER_NOT_FOUND = 1001
CODE_MEETING_NOT_FOUND = 3001
CODE_MEETING_IN_PROGRESS = 3002
CODE_MEETING_ENDED = 3007


# --- errors ----------------------------------------------------------------------------------------


class ZoomError(SyncError):
    """A Zoom call failed. `status` is the HTTP status (0 for network errors), `code` Zoom's number."""

    def __init__(self, message: str, *, status: int = 0, code: int | None = None, retry_after: float | None = None):
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.code = code


class ZoomAuthError(ZoomError, PermanentSyncError):
    """Bad credentials, a disabled app or a token Zoom keeps rejecting: a human must fix the settings."""


class ZoomRequestRejected(ZoomError, PermanentSyncError):
    """Zoom refused the request itself (validation, missing scope, not the host…): retrying cannot help."""


class ZoomNotFound(ZoomError):
    """404: the meeting (3001) or user (1001) does not exist, or has expired."""


class ZoomRateLimited(ZoomError):
    """429 per-second (or concurrency) limit: try again after `retry_after` seconds."""


class ZoomDailyLimitReached(ZoomRateLimited):
    """Daily limit (per account, or the host's creates/updates: 429, or code 300 as 429 or 400): wait for the reset."""


class ZoomUnavailable(ZoomError):
    """5xx, timeout or connection error that outlasted our retries."""


class ZoomCreateOutcomeUnknown(ZoomUnavailable):
    """A create failed in a way that may still have made the meeting; never blindly re-sent."""


# --- token store -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float  # unix seconds

    def __repr__(self) -> str:  # never print the token itself
        return f"CachedToken(expires_at={self.expires_at})"


class TokenStore(Protocol):
    """Where the one shared token lives; must be visible to every process (database or shared cache)."""

    def get(self) -> CachedToken | None: ...
    def save(self, token: CachedToken) -> None: ...
    def acquire_lock(self) -> bool: ...
    def release_lock(self) -> None: ...


class CacheTokenStore:
    """The token in Django's shared cache (database or Redis); `add()` is the single-flight lock.

    `cache.add` is atomic on Redis (SET NX) and on the database cache (a unique key: the loser's INSERT
    fails), so it works the same on SQLite and PostgreSQL and holds no transaction open.
    """

    def __init__(self, cache: Any, key: str, *, lock_timeout: int = 30, clock: Callable[[], float] = time.time):
        self.cache = cache
        self.key = key
        self.lock_key = f"{key}:lock"
        self.lock_timeout = lock_timeout
        self.clock = clock

    def get(self) -> CachedToken | None:
        value = self.cache.get(self.key)
        if not isinstance(value, dict):
            return None
        return CachedToken(value["access_token"], float(value["expires_at"]))

    def save(self, token: CachedToken) -> None:
        ttl = max(1, int(token.expires_at - self.clock()))
        self.cache.set(self.key, {"access_token": token.access_token, "expires_at": token.expires_at}, ttl)

    def acquire_lock(self) -> bool:
        return bool(self.cache.add(self.lock_key, "1", self.lock_timeout))

    def release_lock(self) -> None:
        self.cache.delete(self.lock_key)


# --- the client ------------------------------------------------------------------------------------


def zoom_time(dt: datetime) -> str:
    """Zoom's UTC form `YYYY-MM-DDTHH:MM:SSZ` (with `Z`, Zoom ignores `timezone` for the instant)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field_errors(response: requests.Response) -> bool:
    """Whether a Zoom error body lists field errors: `{"code": 300, "message": "Validation Failed.", "errors": […]}`."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("errors"))


def _seconds_to_utc_midnight(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


class ZoomClient:
    READ, UPDATE, CREATE = "read", "update", "create"  # what may be retried after a 5xx/timeout

    def __init__(
        self,
        api_url: str,
        oauth_url: str,
        account_id: str,
        client_id: str,
        client_secret: str,
        session: requests.Session,
        token_store: TokenStore,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self.api_url = api_url.rstrip("/")
        self.oauth_url = oauth_url
        self.account_id = account_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.session = session
        self.token_store = token_store
        self.sleep = sleep
        self.clock = clock

    def __repr__(self) -> str:
        return f"ZoomClient(api_url={self.api_url!r}, account_id={self.account_id!r})"

    @classmethod
    def from_settings(cls) -> ZoomClient:
        from django.conf import settings
        from django.core.cache import caches

        # One key per app credentials, so two configurations never share a token.
        key = f"zoom:token:{settings.ZOOM_ACCOUNT_ID}:{settings.ZOOM_CLIENT_ID}"
        return cls(
            api_url=settings.ZOOM_API_URL,
            oauth_url=settings.ZOOM_OAUTH_URL,
            account_id=settings.ZOOM_ACCOUNT_ID,
            client_id=settings.ZOOM_CLIENT_ID,
            client_secret=settings.ZOOM_CLIENT_SECRET,
            session=build_session(service="zoom"),  # counts every call (token requests too) for /metrics
            token_store=CacheTokenStore(caches["default"], key),
        )

    # --- token -------------------------------------------------------------------------------------

    def _usable(self, cached: CachedToken | None, rejected: str | None) -> str | None:
        if cached and cached.access_token != rejected and cached.expires_at - RENEW_MARGIN > self.clock():
            return cached.access_token
        return None

    def access_token(self, *, rejected: str | None = None) -> str:
        """The shared token; renewed by one process at a time a few minutes before it expires.

        `rejected` is a token Zoom just refused (code 124): it is never handed out again.
        """
        token = self._usable(self.token_store.get(), rejected)
        if token:
            return token
        for _ in range(LOCK_POLLS):
            if self.token_store.acquire_lock():
                try:
                    # Someone may have renewed it between our look and our lock.
                    token = self._usable(self.token_store.get(), rejected)
                    return token or self._renew()
                finally:
                    self.token_store.release_lock()
            self.sleep(LOCK_POLL)  # another process is renewing: wait for its token
            token = self._usable(self.token_store.get(), rejected)
            if token:
                return token
        # The lock holder seems stuck or dead. Tokens no longer invalidate each other, so get our own.
        logger.warning("zoom: token lock held too long; renewing without it")
        return self._renew()

    def _renew(self) -> str:
        basic = base64.b64encode(f"{self.client_id}:{self._client_secret}".encode()).decode()
        data = {"grant_type": "account_credentials", "account_id": self.account_id}
        for attempt in range(len(BACKOFF) + 1):
            try:
                response = self.session.post(self.oauth_url, data=data, headers={"Authorization": f"Basic {basic}"})
            except requests.RequestException as exc:
                failure: ZoomError = ZoomUnavailable(f"zoom token request failed: {type(exc).__name__}")
            else:
                if response.status_code == 200:
                    body = response.json()
                    expires_at = self.clock() + float(body.get("expires_in") or 3599)
                    self.token_store.save(CachedToken(body["access_token"], expires_at))
                    logger.info("zoom: new access token, valid %ss", body.get("expires_in"))
                    return body["access_token"]
                if response.status_code < 500 and response.status_code != 429:
                    # Wrong client id/secret/account id or not an S2S app: no retry helps.
                    raise ZoomAuthError(
                        f"zoom token request refused (HTTP {response.status_code}): "
                        f"{self._safe(response.text)[:300]}; check ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET",
                        status=response.status_code,
                    )
                failure = ZoomUnavailable(
                    f"zoom token request: HTTP {response.status_code}", status=response.status_code
                )
            if attempt < len(BACKOFF):
                self.sleep(BACKOFF[attempt])
        raise failure

    # --- requests ----------------------------------------------------------------------------------

    def _safe(self, text: str) -> str:
        return redact(text, self._client_secret)

    def _request(
        self, method: str, path: str, *, kind: str, json: dict | None = None, params: dict | None = None
    ) -> requests.Response:
        """One API call with our retry policy; returns a 2xx response or raises a typed ZoomError.

        - 401/124 (also seen as 400/124): renew the token once and retry.
        - 429: a short per-second wait is taken here; longer waits and daily limits go to the caller.
        - 5xx / timeout / connection error: reads, updates and deletes are retried with backoff;
          a create is never re-sent (Zoom has no idempotency key): ZoomCreateOutcomeUnknown.
        """
        url = f"{self.api_url}{path}"
        label = f"{method} {path}"
        renewed = False
        token = self.access_token()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method, url, json=json, params=params, headers={"Authorization": f"Bearer {token}"}
                )
            except requests.RequestException as exc:
                if kind == self.CREATE:
                    raise ZoomCreateOutcomeUnknown(f"zoom {label}: {type(exc).__name__}; outcome unknown") from None
                if attempt > len(BACKOFF):
                    raise ZoomUnavailable(f"zoom {label}: {type(exc).__name__} after {attempt} tries") from None
                self.sleep(BACKOFF[attempt - 1])
                continue
            status = response.status_code
            if status < 300:
                return response
            code, message = self._error_body(response)
            detail = f"zoom {label}: HTTP {status}" + (f" code {code}" if code is not None else "") + f" {message}"
            if (code == CODE_INVALID_TOKEN and status in (400, 401)) or (status == 401 and code is None):
                if renewed:
                    raise ZoomAuthError(detail + " (after renewing the token)", status=status, code=code)
                renewed = True
                token = self.access_token(rejected=token)
                attempt -= 1  # the renewal retry is free
                continue
            if code == CODE_DAILY_MEETING_CAP and method in ("POST", "PATCH") and not _field_errors(response):
                retry_after = parse_retry_after(response.headers.get("Retry-After")) or _seconds_to_utc_midnight()
                raise ZoomDailyLimitReached(
                    detail + " (the host's daily create/update limit)",
                    status=status,
                    code=code,
                    retry_after=retry_after,
                )
            if status == 429:
                retry_after, daily = self._rate_limit(response, message)
                if daily:
                    raise ZoomDailyLimitReached(
                        detail + " (daily limit)", status=status, code=code, retry_after=retry_after
                    )
                if retry_after <= MAX_QPS_WAIT and attempt <= len(BACKOFF):
                    self.sleep(retry_after)
                    continue
                raise ZoomRateLimited(detail, status=status, code=code, retry_after=retry_after)
            if status >= 500:
                if kind == self.CREATE:
                    raise ZoomCreateOutcomeUnknown(detail + "; outcome unknown", status=status, code=code)
                if attempt > len(BACKOFF):
                    raise ZoomUnavailable(detail, status=status, code=code)
                self.sleep(BACKOFF[attempt - 1])
                continue
            if status == 404:
                raise ZoomNotFound(detail, status=status, code=code)
            if status in (401, 403):
                raise ZoomAuthError(detail + " (check the app's scopes)", status=status, code=code)
            if status == 400 and code == CODE_MEETING_IN_PROGRESS:
                raise ZoomError(detail, status=status, code=code, retry_after=3600)  # try again after it ends
            raise ZoomRequestRejected(detail, status=status, code=code)

    def _error_body(self, response: requests.Response) -> tuple[int | None, str]:
        try:
            body = response.json()
        except ValueError:
            return None, self._safe(response.text)[:200]
        if not isinstance(body, dict):
            return None, ""
        code = body.get("code")
        return (code if isinstance(code, int) else None), self._safe(str(body.get("message", "")))[:300]

    def _rate_limit(self, response: requests.Response, message: str) -> tuple[float, bool]:
        """(seconds to wait, is it a daily limit). Daily 429s carry an ISO `Retry-After`, QPS ones often none."""
        header = response.headers.get("Retry-After")
        limit_type = response.headers.get("X-RateLimit-Type", "").lower()
        iso = bool(header) and not header.strip().replace(".", "").isdigit()
        daily = "daily" in limit_type or ("daily" in message.lower() and limit_type != "qps") or iso
        retry_after = parse_retry_after(header)
        if retry_after is None:
            retry_after = _seconds_to_utc_midnight() if daily else 1.0
        return retry_after, daily

    # --- endpoints ---------------------------------------------------------------------------------

    def get_user(self, user: str) -> dict | None:
        """The Zoom user with this id or email, or None when it is not in the account (404/1001)."""
        try:
            return self._request("GET", f"/users/{quote(user, safe='@')}", kind=self.READ).json()
        except ZoomNotFound as exc:
            if exc.code in (CODE_USER_NOT_FOUND, None):
                return None
            raise
        except ZoomRequestRejected as exc:
            if exc.code in (1010, 1120):  # not on this account / invitation expired
                return None
            raise

    def create_meeting(self, user: str, body: dict) -> dict:
        """POST /users/{user}/meetings → the meeting (id, uuid, join_url, start_url…). Never retried blindly."""
        return self._request("POST", f"/users/{quote(user, safe='@')}/meetings", kind=self.CREATE, json=body).json()

    def get_meeting(self, meeting_id: int | str) -> dict:
        return self._request("GET", f"/meetings/{int(meeting_id)}", kind=self.READ).json()

    def update_meeting(self, meeting_id: int | str, body: dict) -> None:
        """PATCH (204). Same id and join link afterwards. Raises ZoomNotFound when the meeting is gone."""
        self._request("PATCH", f"/meetings/{int(meeting_id)}", kind=self.UPDATE, json=body)

    def delete_meeting(self, meeting_id: int | str) -> bool:
        """DELETE (204) → True. Already gone (404 / code 3001) or already over (3007) → False: nothing to do."""
        try:
            self._request(
                "DELETE", f"/meetings/{int(meeting_id)}", kind=self.UPDATE, params={"schedule_for_reminder": "false"}
            )
        except ZoomNotFound as exc:
            logger.info("zoom: meeting %s already gone (code %s)", meeting_id, exc.code)
            return False
        except ZoomRequestRejected as exc:
            if exc.code != CODE_MEETING_ENDED:
                raise
            logger.info("zoom: meeting %s has already ended; nothing to delete", meeting_id)
            return False
        return True

    def list_upcoming_meetings(self, user: str) -> Iterator[dict]:
        """Every upcoming meeting of `user`, page by page (agenda is cut to 250 characters here)."""
        params: dict[str, Any] = {"type": "upcoming", "page_size": 300}
        while True:
            page = self._request(
                "GET", f"/users/{quote(user, safe='@')}/meetings", kind=self.READ, params=params
            ).json()
            yield from page.get("meetings") or []
            next_token = page.get("next_page_token")
            if not next_token:
                return
            params = {**params, "next_page_token": next_token}
