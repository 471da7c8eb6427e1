"""Calendly API v2 client: the current user, webhook subscriptions, scheduled events and invitees.

Facts it follows (https://developer.calendly.com/api-docs): `GET /users/me` gives the organization;
`POST /webhook_subscriptions` answers 409 when the URL is already subscribed (we then look the existing
one up); lists page with `page_token` (the original request again, see `_paginate`); 500 requests per
user per minute, and a 429 carries `Retry-After` and/or `X-RateLimit-Reset` (seconds). Reads are retried
on 5xx and timeouts with backoff; writes are not (a lost create answer must not become a second create),
except after a 429, which means the request was not processed.

Like every client here it takes its URL, token and session as arguments and never reads settings;
`from_settings()` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from calsync.errors import PermanentSyncError, SyncError
from calsync.http import build_session, parse_retry_after, redact

SERVICE = "calendly"
# Tests replace this (no real sleeping); the client reads it at construction time.
DEFAULT_SLEEP: Callable[[float], None] = time.sleep


class CalendlyError(SyncError):
    """A Calendly API call failed. `status` is the HTTP status (None for a network failure)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, retry_after=retry_after)
        self.status = status


class CalendlyNotConfigured(CalendlyError, PermanentSyncError):
    pass


class CalendlyAuthError(CalendlyError, PermanentSyncError):
    """401/403: a bad or revoked token, a missing scope, or a plan without the feature."""


class CalendlyNotFound(CalendlyError, PermanentSyncError):
    pass


class CalendlyRequestError(CalendlyError, PermanentSyncError):
    """400/422 and other 4xx: the request itself is wrong; repeating it cannot help."""


class CalendlyRateLimited(CalendlyError):
    pass


class CalendlyUnavailable(CalendlyError):
    """5xx or a network failure that outlived the retries."""


class SubscriptionExists(CalendlyError, PermanentSyncError):
    """409: the URL already has a subscription. `existing` is it, when we could find it in the scope."""

    def __init__(self, message: str, *, existing: dict | None):
        super().__init__(message, status=409)
        self.existing = existing


def uuid_of(uri_or_uuid: str) -> str:
    """The last path segment of a Calendly URI (or the value itself when it already is a uuid)."""
    return uri_or_uuid.rstrip("/").rsplit("/", 1)[-1]


def calendly_time(value: datetime) -> str:
    """UTC with microseconds and a Z, as the API documents: 2020-01-02T03:04:05.678123Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CalendlyClient:
    def __init__(
        self,
        api_url: str,
        token: str,
        session: requests.Session,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_requests_per_minute: int = 500,
        read_retries: int = 3,
        rate_limit_retries: int = 3,
        max_wait: float = 120.0,
    ):
        if not token:
            raise CalendlyNotConfigured("CALENDLY_API_TOKEN is not set")
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.session = session
        self.sleep = sleep if sleep is not None else DEFAULT_SLEEP
        self.clock = clock
        # Space requests evenly so a long backfill stays under the per-user limit that other
        # integrations of the same user share; a 429 still gets honoured if someone else used it up.
        self.min_interval = 60.0 / max_requests_per_minute if max_requests_per_minute > 0 else 0.0
        self.read_retries = read_retries
        self.rate_limit_retries = rate_limit_retries
        self.max_wait = max_wait
        self._not_before = 0.0
        self.requests_made = 0

    @classmethod
    def from_settings(cls) -> CalendlyClient:
        from django.conf import settings

        return cls(
            settings.CALENDLY_API_URL,
            settings.CALENDLY_API_TOKEN,
            build_session(service=SERVICE),  # the session counts every call for /metrics
            max_requests_per_minute=settings.CALENDLY_MAX_REQUESTS_PER_MINUTE,
        )

    # --- users ------------------------------------------------------------------------------------

    def get_current_user(self) -> dict:
        """`GET /users/me` → the user resource (`uri`, `current_organization`, …)."""
        return self._get("/users/me")["resource"]

    # --- webhook subscriptions --------------------------------------------------------------------

    def list_webhook_subscriptions(self, *, organization: str, scope: str, user: str | None = None) -> list[dict]:
        params = {"organization": organization, "scope": scope, "count": 100}
        if scope == "user":
            params["user"] = user or ""
        return list(self._paginate("/webhook_subscriptions", params))

    def create_webhook_subscription(
        self,
        *,
        url: str,
        organization: str,
        scope: str,
        events: tuple[str, ...] | list[str],
        user: str | None = None,
        signing_key: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {"url": url, "events": list(events), "organization": organization, "scope": scope}
        if scope == "user":
            body["user"] = user
        if signing_key:
            body["signing_key"] = signing_key
        try:
            return self._request("POST", "/webhook_subscriptions", json=body)["resource"]
        except CalendlyError as exc:
            if exc.status != 409:
                raise
        existing = next(
            (
                s
                for s in self.list_webhook_subscriptions(organization=organization, scope=scope, user=user)
                if s.get("callback_url") == url
            ),
            None,
        )
        raise SubscriptionExists(f"a webhook subscription for {url} already exists", existing=existing)

    def delete_webhook_subscription(self, uri_or_uuid: str) -> None:
        self._request("DELETE", f"/webhook_subscriptions/{uuid_of(uri_or_uuid)}")

    # --- scheduled events and invitees ------------------------------------------------------------

    def list_scheduled_events(
        self,
        *,
        organization: str | None = None,
        user: str | None = None,
        min_start_time: datetime | None = None,
        max_start_time: datetime | None = None,
        status: str | None = None,
        count: int = 100,
    ) -> Iterator[dict]:
        """Every event starting in the window (the API filters on start time only), page by page."""
        params: dict[str, Any] = {"count": count, "sort": "start_time:asc"}
        if organization:
            params["organization"] = organization
        if user:
            params["user"] = user
        if min_start_time:
            params["min_start_time"] = calendly_time(min_start_time)
        if max_start_time:
            params["max_start_time"] = calendly_time(max_start_time)
        if status:
            params["status"] = status
        return self._paginate("/scheduled_events", params)

    def list_event_invitees(self, event_uri_or_uuid: str, *, status: str | None = None, count: int = 100):
        params: dict[str, Any] = {"count": count, "sort": "created_at:asc"}
        if status:
            params["status"] = status
        return self._paginate(f"/scheduled_events/{uuid_of(event_uri_or_uuid)}/invitees", params)

    def get_scheduled_event(self, uri_or_uuid: str) -> dict:
        return self._get(f"/scheduled_events/{uuid_of(uri_or_uuid)}")["resource"]

    # --- transport --------------------------------------------------------------------------------

    def _get(self, path: str, params: dict | None = None) -> dict:
        return self._request("GET", path, params=params)

    def _paginate(self, path: str, params: dict) -> Iterator[dict]:
        """Every item of a list, page by page: the same request (all its filters) plus `page_token`.

        `pagination.next_page` is never followed: its host and query are Calendly's to choose, and our
        token must only ever go to the configured API with the filters we asked for.
        """
        page = self._get(path, params)
        seen: set[str] = set()
        while True:
            yield from page.get("collection") or []
            token = next_page_token(page.get("pagination") or {})
            if not token:
                return
            if token in seen:  # a token handed out twice would page forever
                raise CalendlyUnavailable(f"Calendly GET {path}: page token {token!r} repeated")
            seen.add(token)
            page = self._get(path, {**params, "page_token": token})

    def _url(self, path: str) -> str:
        # Always the configured API: the bearer token never goes to a host a response named.
        if not path.startswith("/"):
            raise CalendlyRequestError(f"refusing to call {path!r}: only paths under {self.api_url}")
        return self.api_url + path

    def _pace(self) -> None:
        now = self.clock()
        wait = self._not_before - now
        if wait > 0:
            self.sleep(min(wait, self.max_wait))
        self._not_before = max(now, self._not_before) + self.min_interval

    def _request(self, method: str, path_or_url: str, *, params: dict | None = None, json: Any = None) -> dict:
        url = self._url(path_or_url)
        is_read = method == "GET"
        server_failures = 0
        rate_limited = 0
        while True:
            self._pace()
            self.requests_made += 1
            try:
                response = self.session.request(
                    method, url, params=params, json=json, headers={"Authorization": f"Bearer {self._token}"}
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                server_failures += 1
                if is_read and server_failures <= self.read_retries:
                    self.sleep(2.0 ** (server_failures - 1))
                    continue
                raise CalendlyUnavailable(f"Calendly {method} {_path(url)}: {type(exc).__name__}") from None
            self._note_rate_headers(response)
            code = response.status_code
            if code == 429:
                rate_limited += 1
                wait = _retry_after(response)
                if rate_limited <= self.rate_limit_retries:
                    self.sleep(min(wait, self.max_wait))
                    continue
                raise CalendlyRateLimited(
                    f"Calendly {method} {_path(url)}: rate limited (429)", status=429, retry_after=wait
                )
            if code >= 500:
                server_failures += 1
                if is_read and server_failures <= self.read_retries:
                    self.sleep(2.0 ** (server_failures - 1))
                    continue
                raise CalendlyUnavailable(self._message(method, url, response), status=code)
            if code in (401, 403):
                raise CalendlyAuthError(self._message(method, url, response), status=code)
            if code == 404:
                raise CalendlyNotFound(self._message(method, url, response), status=code)
            if code == 409:
                raise CalendlyError(self._message(method, url, response), status=code)
            if code >= 400:
                raise CalendlyRequestError(self._message(method, url, response), status=code)
            if code == 204 or not response.content:
                return {}
            try:
                return response.json()
            except ValueError:
                raise CalendlyUnavailable(f"Calendly {method} {_path(url)}: answer is not JSON", status=code) from None

    def _note_rate_headers(self, response: requests.Response) -> None:
        """When the window is used up, wait for its reset before the next call instead of earning a 429."""
        if response.headers.get("X-RateLimit-Remaining") == "0" and response.status_code != 429:
            reset = parse_retry_after(response.headers.get("X-RateLimit-Reset")) or 60.0
            self._not_before = max(self._not_before, self.clock() + reset)

    def _message(self, method: str, url: str, response: requests.Response) -> str:
        detail = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                detail = ": ".join(str(body[k]) for k in ("title", "message") if body.get(k))
                for item in body.get("details") or []:
                    if isinstance(item, dict):
                        detail += f" [{item.get('parameter', '')}: {item.get('message', '')}]"
        except ValueError:
            detail = response.text[:200]
        text = f"Calendly {method} {_path(url)} → {response.status_code}" + (f": {detail}" if detail else "")
        return redact(text, self._token)[:500]


def next_page_token(pagination: dict) -> str | None:
    """The token of the next page: `next_page_token`, or the `page_token` inside an older `next_page` link."""
    token = pagination.get("next_page_token")
    if token:
        return str(token)
    link = pagination.get("next_page")
    if link:
        values = parse_qs(urlsplit(str(link)).query).get("page_token")
        return values[0] if values else None
    return None


def _path(url: str) -> str:
    """The path only: page links carry query strings we do not need in errors."""
    return url.split("?", 1)[0]


def _retry_after(response: requests.Response) -> float:
    for header in ("Retry-After", "X-RateLimit-Reset"):
        seconds = parse_retry_after(response.headers.get(header))
        if seconds is not None:
            return max(seconds, 1.0)
    return 60.0
