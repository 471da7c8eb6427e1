"""Kommo OAuth 2.0: connect an account (authorization code), keep its tokens fresh, hand them to KommoClient.

Which credentials KommoClient uses (`kommo_credentials()`): OAuth when KOMMO_CLIENT_ID,
KOMMO_CLIENT_SECRET and KOMMO_REDIRECT_URI are set *and* staff connected an account in the admin
(a KommoConnection row exists, even a broken one: a broken connection must fail loudly, not fall back
to another token silently). Otherwise the long-lived KOMMO_ACCESS_TOKEN. Disconnecting in the admin
deletes the row and so returns to the long-lived token.

Facts (https://developers.kommo.com/docs/oauth-20): the access token lives 24 h, the refresh token
3 months and is rotated on every refresh. Refreshes are serialized across processes by a row lock
held around the token call (the one place a lock around an HTTP call is right: only one process may
spend the refresh token, and the rotated one must be saved in the same transaction). A process that
waited for the lock finds the token already renewed and uses it. A refused refresh marks the
connection "reconnect": every Kommo call then fails at once as a permanent error (no request, no
refresh storm) and one alert is raised.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from calsync.errors import PermanentSyncError
from calsync.http import build_session, redact
from crm.errors import KommoPermanentError, KommoRateLimited, KommoReconnectNeeded, KommoServerError
from crm.models import KommoConnection
from crm.tokens import StaticToken, TokenProvider

logger = logging.getLogger(__name__)

SINGLETON = KommoConnection.SINGLETON
ACCESS_TOKEN_LIFETIME = 86400  # Kommo's default when `expires_in` is missing
REFRESH_TOKEN_LIFETIME = timedelta(days=90)  # "3 months", restarted by every refresh
AUTHORIZATION_CODE_LIFETIME = timedelta(minutes=20)
RECONNECT_HINT = "reconnect Kommo in the admin (CRM → Kommo connection)"
# Hosts Kommo accounts live on; the callback's `referer` names the account, and the client secret is
# sent there, so it must be one of these (or exactly KOMMO_BASE_URL's host when that is set).
ACCOUNT_HOST = re.compile(r"[a-z0-9][a-z0-9-]*\.(kommo\.com|amocrm\.com|amocrm\.ru)")


class OAuthError(PermanentSyncError):
    """The connect flow cannot go on (bad callback, wrong account); the message is safe to show."""


class TokenRequestRefused(KommoPermanentError):
    """Kommo refused a token request (400/401/403: invalid_grant, revoked, wrong client)."""


# --- settings ----------------------------------------------------------------------------------------


def oauth_configured() -> bool:
    return bool(settings.KOMMO_CLIENT_ID and settings.KOMMO_CLIENT_SECRET and settings.KOMMO_REDIRECT_URI)


def current_connection() -> KommoConnection | None:
    return KommoConnection.objects.filter(pk=SINGLETON).first()


def is_connected() -> bool:
    """OAuth is what KommoClient uses (see the module docstring)."""
    return oauth_configured() and KommoConnection.objects.filter(pk=SINGLETON).exists()


def kommo_credentials() -> tuple[str, TokenProvider]:
    """(base URL, token provider) for kommo_client()."""
    if oauth_configured():
        base_url = KommoConnection.objects.filter(pk=SINGLETON).values_list("base_url", flat=True).first()
        if base_url:
            return base_url, OAuthTokenProvider.from_settings()
    return settings.KOMMO_BASE_URL, StaticToken(settings.KOMMO_ACCESS_TOKEN)


def _session() -> requests.Session:
    return build_session((settings.KOMMO_CONNECT_TIMEOUT, settings.KOMMO_READ_TIMEOUT), service="kommo")


# --- the token endpoint --------------------------------------------------------------------------------


def _token_call(session: requests.Session, base_url: str, payload: dict, secret: str) -> dict:
    """POST /oauth2/access_token → {access_token, refresh_token, expires_in}. Nothing secret in any error."""
    where = f"Kommo token request ({payload['grant_type']})"
    try:
        response = session.post(f"{base_url.rstrip('/')}/oauth2/access_token", json=payload)
    except requests.RequestException as exc:
        raise KommoServerError(f"{where}: {type(exc).__name__}") from None
    status = response.status_code
    if status == 429:
        raise KommoRateLimited(f"{where}: 429 Too Many Requests", status=429, retry_after=60)
    if status >= 500:
        raise KommoServerError(f"{where}: HTTP {status}", status=status)
    if status >= 400:
        raise TokenRequestRefused(f"{where}: HTTP {status} {_problem(response, secret)}".strip(), status=status)
    try:
        body = response.json()
        tokens = {
            "access_token": str(body["access_token"]),
            "refresh_token": str(body["refresh_token"]),
            "expires_in": int(body.get("expires_in") or ACCESS_TOKEN_LIFETIME),
        }
    except (ValueError, KeyError, TypeError):
        raise KommoServerError(f"{where}: HTTP {status} without tokens in the answer", status=status) from None
    if not tokens["access_token"] or not tokens["refresh_token"]:
        raise KommoServerError(f"{where}: HTTP {status} with empty tokens", status=status)
    return tokens


def _problem(response: requests.Response, secret: str) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get(k)) for k in ("hint", "detail", "title") if body.get(k)]
    return redact("; ".join(parts), secret)[:300]


# --- connecting (the admin's authorization-code flow) --------------------------------------------------


def authorization_url(state: str) -> str:
    """Kommo's consent page; it comes back to KOMMO_REDIRECT_URI with code, state and referer."""
    query = urlencode({"client_id": settings.KOMMO_CLIENT_ID, "state": state, "mode": "post_message"})
    return f"{settings.KOMMO_OAUTH_URL}?{query}"


def account_base_url(referer: str) -> str:
    """The account's base URL from the callback's `referer` (e.g. "acme.kommo.com"), checked."""
    host = (referer or "").strip().lower()
    if "://" in host:
        host = urlsplit(host).netloc
    host = host.rstrip("/")
    configured = settings.KOMMO_BASE_URL.rstrip("/")
    if configured:
        if urlsplit(configured).netloc.lower() != host:
            raise OAuthError(
                f"Kommo answered for the account {host or '(none)'}, but KOMMO_BASE_URL is {configured}: "
                "connect the configured account, or change KOMMO_BASE_URL."
            )
        return configured
    if not ACCOUNT_HOST.fullmatch(host):
        raise OAuthError(f"{host or '(none)'} is not a Kommo account address; calsync did not connect.")
    return f"https://{host}"


def connect(
    code: str,
    referer: str,
    *,
    user: Any = None,
    session: requests.Session | None = None,
    now: datetime | None = None,
) -> KommoConnection:
    """Exchange the authorization code for tokens and store them (replacing any earlier connection)."""
    if not oauth_configured():
        raise OAuthError("Set KOMMO_CLIENT_ID, KOMMO_CLIENT_SECRET and KOMMO_REDIRECT_URI first.")
    if not code:
        raise OAuthError("Kommo's answer carried no authorization code.")
    base_url = account_base_url(referer)
    payload = {
        "client_id": settings.KOMMO_CLIENT_ID,
        "client_secret": settings.KOMMO_CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": settings.KOMMO_REDIRECT_URI,
    }
    tokens = _token_call(session or _session(), base_url, payload, settings.KOMMO_CLIENT_SECRET)
    now = now or timezone.now()
    connection, _ = KommoConnection.objects.update_or_create(
        pk=SINGLETON,
        defaults={
            "base_url": base_url,
            "client_id": settings.KOMMO_CLIENT_ID,
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": now + timedelta(seconds=tokens["expires_in"]),
            "refresh_expires_at": now + REFRESH_TOKEN_LIFETIME,
            "state": KommoConnection.State.CONNECTED,
            "last_error": "",
            "connected_by": user if getattr(user, "pk", None) else None,
            "connected_at": now,
            "refreshed_at": None,
        },
    )
    logger.info("kommo: connected to %s through OAuth", connection.host)
    return connection


def disconnect() -> bool:
    """Forget the OAuth connection (calsync returns to KOMMO_ACCESS_TOKEN, if set). True if there was one."""
    deleted, _ = KommoConnection.objects.filter(pk=SINGLETON).delete()
    return bool(deleted)


# --- using and refreshing the tokens -------------------------------------------------------------------


class OAuthTokenProvider:
    """KommoClient's bearer token from the stored OAuth connection, refreshed `margin` before it expires."""

    hint = RECONNECT_HINT

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        session: requests.Session,
        *,
        margin: float = 600,
        clock: Callable[[], datetime] = timezone.now,
        alert: Callable[[str, str, str], object] | None = None,
    ):
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.session = session
        self.margin = timedelta(seconds=margin)
        self.clock = clock
        self.alert = alert

    def __repr__(self) -> str:
        return f"OAuthTokenProvider(client_id={self.client_id!r})"

    @classmethod
    def from_settings(cls, **overrides: Any) -> OAuthTokenProvider:
        from calsync.alerts import raise_alert

        kwargs: dict[str, Any] = {"margin": settings.KOMMO_OAUTH_REFRESH_MARGIN, "alert": raise_alert, **overrides}
        session = kwargs.pop("session", None) or _session()
        return cls(
            settings.KOMMO_CLIENT_ID, settings.KOMMO_CLIENT_SECRET, settings.KOMMO_REDIRECT_URI, session, **kwargs
        )

    def _fresh(self, connection: KommoConnection) -> bool:
        return connection.expires_at - self.margin > self.clock()

    def access_token(self) -> str:
        connection = self._load(KommoConnection.objects.all())
        if self._fresh(connection):
            return connection.access_token
        return self._refresh(stale=connection.access_token)

    def rejected(self, token: str) -> str | None:
        """Kommo answered 401: refresh unless another process already did; a refused refresh raises."""
        return self._refresh(stale=token, force=True)

    def _load(self, queryset) -> KommoConnection:
        connection = queryset.filter(pk=SINGLETON).first()
        if connection is None:
            raise KommoReconnectNeeded(f"Kommo is not connected: {RECONNECT_HINT}")
        if connection.state == KommoConnection.State.RECONNECT:
            # No request and no refresh: the refresh token was refused once, it will be again.
            raise KommoReconnectNeeded(
                f"Kommo's OAuth connection is broken ({connection.last_error}): {RECONNECT_HINT}"
            )
        return connection

    def _refresh(self, *, stale: str, force: bool = False) -> str:
        refused: TokenRequestRefused | None = None
        with transaction.atomic():
            # Other processes wanting to refresh wait here until this transaction ends.
            connection = self._load(KommoConnection.objects.select_for_update())
            if connection.access_token != stale and self._fresh(connection):
                return connection.access_token  # renewed by the process we waited for
            if not force and self._fresh(connection):
                return connection.access_token
            payload = {
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "grant_type": "refresh_token",
                "refresh_token": connection.refresh_token,
                "redirect_uri": self.redirect_uri,
            }
            now = self.clock()
            try:
                # A network error or 5xx raises out of here: nothing changes, and the old refresh token
                # stays valid until a new one is used (Kommo's OAuth docs), so the next attempt can resend it.
                tokens = _token_call(self.session, connection.base_url, payload, self._client_secret)
            except TokenRequestRefused as exc:
                refused = exc
                connection.state = KommoConnection.State.RECONNECT
                connection.last_error = str(exc)[:500]
                connection.save(update_fields=["state", "last_error"])
            else:
                # The rotated refresh token is saved in the same transaction that spent the old one.
                connection.access_token = tokens["access_token"]
                connection.refresh_token = tokens["refresh_token"]
                connection.expires_at = now + timedelta(seconds=tokens["expires_in"])
                connection.refresh_expires_at = now + REFRESH_TOKEN_LIFETIME
                connection.refreshed_at = now
                connection.last_error = ""
                connection.save(
                    update_fields=[
                        "access_token",
                        "refresh_token",
                        "expires_at",
                        "refresh_expires_at",
                        "refreshed_at",
                        "last_error",
                    ]
                )
                logger.info("kommo: OAuth access token refreshed, valid until %s", connection.expires_at)
                return connection.access_token
        # Committed: every process now sees the broken connection and stops asking Kommo.
        logger.error("kommo: the OAuth refresh was refused; %s", RECONNECT_HINT)
        if self.alert is not None:
            from calsync.alerts import KOMMO_DISCONNECTED

            self.alert(
                f"kommo-oauth-refused:{connection.connected_at.isoformat()}",
                KOMMO_DISCONNECTED,
                f"Kommo refused to refresh calsync's OAuth token for {connection.host} ({refused}). "
                f"Kommo syncs fail until someone reconnects: {_admin_link()}",
            )
        raise KommoReconnectNeeded(f"{refused}: {RECONNECT_HINT}", status=refused.status if refused else None)


def _admin_link() -> str:
    base = settings.CALSYNC_PUBLIC_URL.rstrip("/")
    return f"{base}/admin/crm/kommoconnection/" if base else "/admin/crm/kommoconnection/"


def keep_fresh() -> str:
    """For the schedule: refresh when due even without Kommo traffic, so the refresh token never lapses."""
    if not oauth_configured():
        return "Kommo OAuth not configured"
    before = current_connection()
    if before is None:
        return "Kommo OAuth not connected"
    OAuthTokenProvider.from_settings().access_token()
    after = current_connection()
    refreshed = after is not None and after.access_token != before.access_token
    return (
        f"{'refreshed' if refreshed else 'still valid'}; access token valid until {after.expires_at:%Y-%m-%d %H:%M} UTC"
    )
