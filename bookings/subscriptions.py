"""The Calendly webhook subscription: subscribe, find ours, check it, and recreate it safely.

Calendly disables a subscription silently after 24 hours of failed deliveries and never re-enables it
(https://developer.calendly.com/api-docs/overview/webhooks/webhook-errors): the watch finds that,
raises an alert and, if allowed, recreates it. Recreating creates the new subscription FIRST and
deletes the old one only once the create succeeded, so a failed create leaves the team exactly where
it was. A disabled subscription may still hold its URL (409 on a second create with the same URL, we
assume); the replacement then uses the same URL with a `calsync_generation` query parameter, which
routes to the same view (the signature covers the body only).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import cache

from bookings.calendly_api import INVITEE_EVENTS, CalendlyClient, CalendlyError, SubscriptionExists
from calsync import alerts
from calsync.metrics import SUBSCRIPTION_CACHE_KEY

logger = logging.getLogger(__name__)

GENERATION_PARAM = "calsync_generation"


@dataclass(frozen=True)
class Owner:
    """Where subscriptions live: the organization, and the user for user-scope ones."""

    organization: str
    user: str
    scope: str

    def list_kwargs(self) -> dict:
        return {"organization": self.organization, "scope": self.scope, "user": self.user}


def find_owner(client: CalendlyClient, scope: str | None = None) -> Owner:
    me = client.get_current_user()
    scope = scope or settings.CALENDLY_WEBHOOK_SCOPE
    return Owner(organization=me["current_organization"], user=me["uri"], scope=scope)


def same_endpoint(a: str, b: str) -> bool:
    """True when two callback URLs reach the same calsync view (ignoring our generation marker and a final /)."""

    def norm(url: str) -> tuple:
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != GENERATION_PARAM]
        return (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), tuple(sorted(query)))

    return norm(a) == norm(b)


def with_generation(url: str, generation: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != GENERATION_PARAM] + [(GENERATION_PARAM, generation)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def find_subscriptions(client: CalendlyClient, owner: Owner, url: str) -> list[dict]:
    """Our subscriptions (the URL given, in the owner's scope), active ones first."""
    listed = client.list_webhook_subscriptions(**owner.list_kwargs())
    ours = [s for s in listed if same_endpoint(s.get("callback_url") or "", url)]
    return sorted(ours, key=lambda s: (s.get("state") != "active", s.get("created_at") or ""))


@dataclass(frozen=True)
class SubscribeResult:
    subscription: dict
    created: bool  # False: the URL was already subscribed and `subscription` is the existing one
    generated_key: str | None  # a signing key we made up; shown once, never stored by us


def subscribe(client: CalendlyClient, url: str, scope: str | None = None) -> SubscribeResult:
    owner = find_owner(client, scope)
    configured = settings.CALENDLY_SIGNING_KEYS[0] if settings.CALENDLY_SIGNING_KEYS else None
    key = configured or secrets.token_urlsafe(32)
    try:
        sub = client.create_webhook_subscription(
            url=url, organization=owner.organization, scope=owner.scope, user=owner.user, signing_key=key
        )
    except SubscriptionExists as exc:
        existing = exc.existing or next(iter(find_subscriptions(client, owner, url)), None)
        return SubscribeResult(subscription=existing or {"callback_url": url}, created=False, generated_key=None)
    logger.info("calendly subscription created: %s (%s scope)", sub.get("uri"), owner.scope)
    return SubscribeResult(subscription=sub, created=True, generated_key=None if configured else key)


@dataclass(frozen=True)
class CheckResult:
    state: str  # active | disabled | missing
    subscription: dict | None
    others: list[dict]

    @property
    def ok(self) -> bool:
        return self.state == "active"


def check(client: CalendlyClient, url: str, owner: Owner | None = None) -> CheckResult:
    owner = owner or find_owner(client)
    ours = find_subscriptions(client, owner, url)
    state = "missing" if not ours else ("active" if ours[0].get("state") == "active" else "disabled")
    cache.set(SUBSCRIPTION_CACHE_KEY, {"state": state, "checked_at": time.time()}, timeout=None)
    return CheckResult(state=state, subscription=ours[0] if ours else None, others=ours[1:])


@dataclass(frozen=True)
class WatchResult:
    state: str
    recreated: dict | None = None
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


def watch(client: CalendlyClient, url: str, *, recreate: bool | None = None) -> WatchResult:
    """The scheduled check: alert on a disabled or missing subscription; recreate a disabled one if allowed."""
    recreate = settings.CALENDLY_RECREATE_DISABLED_SUBSCRIPTION if recreate is None else recreate
    owner = find_owner(client)
    result = check(client, url, owner)
    if result.state == "active":
        return WatchResult("active")
    if result.state == "missing":
        alerts.raise_alert(
            f"subscription-missing:{url}",
            alerts.SUBSCRIPTION_MISSING,
            f"no Calendly webhook subscription for {url} in {owner.scope} scope: calsync receives no bookings. "
            "Run `manage.py calendly_webhook subscribe --url …`.",
        )
        return WatchResult("missing", detail="alert raised")
    old = result.subscription or {}
    summary = (
        f"Calendly disabled the webhook subscription {old.get('uri')} for {url} "
        f"(failing since {old.get('retry_started_at') or 'unknown'}). Bookings made since then are recovered "
        "by reconciliation."
    )
    if not recreate:
        alerts.raise_alert(
            f"subscription-disabled:{old.get('uri')}",
            alerts.SUBSCRIPTION_DISABLED,
            summary + " Recreate it: `manage.py calendly_webhook subscribe` after deleting it, "
            "or set CALENDLY_RECREATE_DISABLED_SUBSCRIPTION=true.",
        )
        return WatchResult("disabled", detail="alert raised; automatic recreation is off")
    try:
        new = recreate_subscription(client, owner, old, url)
    except (CalendlyError, ValueError) as exc:
        alerts.raise_alert(
            f"subscription-disabled:{old.get('uri')}",
            alerts.SUBSCRIPTION_DISABLED,
            summary + f" Recreating it failed ({exc}); the old subscription was left in place.",
        )
        logger.error("calendly subscription %s disabled and could not be recreated: %s", old.get("uri"), exc)
        return WatchResult("disabled", detail=f"recreate failed: {exc}")
    alerts.raise_alert(
        f"subscription-recreated:{old.get('uri')}",
        alerts.SUBSCRIPTION_DISABLED,
        summary + f" calsync recreated it as {new.get('uri')}.",
    )
    cache.set(SUBSCRIPTION_CACHE_KEY, {"state": "active", "checked_at": time.time()}, timeout=None)
    return WatchResult("disabled", recreated=new, detail=f"recreated as {new.get('uri')}")


def recreate_subscription(client: CalendlyClient, owner: Owner, old: dict, url: str) -> dict:
    """Create the replacement, then delete `old`. Raises (and deletes nothing) if the create fails."""
    if not settings.CALENDLY_SIGNING_KEYS:
        raise ValueError("CALENDLY_SIGNING_KEY is not set, so a new subscription's deliveries could not be verified")
    create = {
        "organization": owner.organization,
        "scope": old.get("scope") or owner.scope,
        "user": old.get("user") or owner.user,
        "events": old.get("events") or list(INVITEE_EVENTS),
        "signing_key": settings.CALENDLY_SIGNING_KEYS[0],
    }
    try:
        new = client.create_webhook_subscription(url=url, **create)
    except SubscriptionExists:
        # The disabled one still holds the URL: subscribe a variant that reaches the same view.
        new = client.create_webhook_subscription(url=with_generation(url, str(int(time.time()))), **create)
    logger.warning("calendly subscription %s recreated as %s", old.get("uri"), new.get("uri"))
    if old.get("uri") and old.get("uri") != new.get("uri"):
        try:
            client.delete_webhook_subscription(old["uri"])
        except CalendlyError as exc:  # harmless: a disabled subscription delivers nothing
            logger.warning("old calendly subscription %s not deleted: %s", old.get("uri"), exc)
    return new
