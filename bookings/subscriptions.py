"""The Calendly webhook subscription: subscribe, find ours, check it, and recreate or upgrade it safely.

A subscription asks Calendly for every kind calsync handles (`bookings.state.handled_kinds`, the
processing dispatch table). One made before calsync handled a kind lacks it: `check` reports that, the
watch raises an alert, and `upgrade` replaces it.

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

from bookings.calendly_api import CalendlyClient, CalendlyError, SubscriptionExists
from bookings.state import handled_kinds
from calsync import alerts

logger = logging.getLogger(__name__)
# The last watch result, for /metrics (ops.metrics): {"state": …, "checked_at": Unix time}.
SUBSCRIPTION_CACHE_KEY = "calsync:calendly-subscription-state"

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
    # Ours may live at a URL variant (a recreated or upgraded one): Calendly would not answer 409 for it.
    active = [s for s in find_subscriptions(client, owner, url) if s.get("state") == "active"]
    if active:
        return SubscribeResult(subscription=active[0], created=False, generated_key=None)
    configured = settings.CALENDLY_SIGNING_KEYS[0] if settings.CALENDLY_SIGNING_KEYS else None
    key = configured or secrets.token_urlsafe(32)
    try:
        sub = client.create_webhook_subscription(
            url=url,
            organization=owner.organization,
            scope=owner.scope,
            user=owner.user,
            signing_key=key,
            events=handled_kinds(),
        )
    except SubscriptionExists as exc:
        existing = exc.existing or next(iter(find_subscriptions(client, owner, url)), None)
        return SubscribeResult(subscription=existing or {"callback_url": url}, created=False, generated_key=None)
    logger.info("calendly subscription created: %s (%s scope)", sub.get("uri"), owner.scope)
    return SubscribeResult(subscription=sub, created=True, generated_key=None if configured else key)


def missing_kinds(subscription: dict | None) -> list[str]:
    """The kinds calsync acts on that this subscription does not deliver (in dispatch-table order)."""
    subscribed = set((subscription or {}).get("events") or [])
    return [kind for kind in handled_kinds() if kind not in subscribed]


def wanted_events(old: dict | None = None) -> list[str]:
    """What a new subscription asks for: every kind calsync handles, plus any extra the old one had."""
    extra = [kind for kind in (old or {}).get("events") or [] if kind not in handled_kinds()]
    return [*handled_kinds(), *extra]


@dataclass(frozen=True)
class CheckResult:
    state: str  # active | disabled | missing
    subscription: dict | None
    others: list[dict]
    missing_kinds: tuple[str, ...] = ()  # handled kinds the subscription does not deliver

    @property
    def ok(self) -> bool:
        return self.state == "active" and not self.missing_kinds


def check(client: CalendlyClient, url: str, owner: Owner | None = None) -> CheckResult:
    owner = owner or find_owner(client)
    ours = find_subscriptions(client, owner, url)
    state = "missing" if not ours else ("active" if ours[0].get("state") == "active" else "disabled")
    cache.set(SUBSCRIPTION_CACHE_KEY, {"state": state, "checked_at": time.time()}, timeout=None)
    subscription = ours[0] if ours else None
    lacking = tuple(missing_kinds(subscription)) if subscription else ()
    return CheckResult(state=state, subscription=subscription, others=ours[1:], missing_kinds=lacking)


@dataclass(frozen=True)
class UpgradeResult:
    old: dict | None
    new: dict | None  # None: nothing to do (or nothing to upgrade)
    old_deleted: bool
    detail: str


def upgrade(client: CalendlyClient, url: str, scope: str | None = None) -> UpgradeResult:
    """Replace a subscription that lacks a handled kind: create the new one first, delete the old after.

    A failed create raises and leaves the old subscription as it was. Both exist for a moment; a
    delivery that arrives through both is stored once (the de-duplication key).
    """
    owner = find_owner(client, scope)
    result = check(client, url, owner)
    if result.subscription is None:
        return UpgradeResult(None, None, False, f"no subscription for {url}: run `calendly_webhook subscribe`")
    if not result.missing_kinds:
        return UpgradeResult(result.subscription, None, False, "already delivers every kind calsync handles")
    old = result.subscription
    new, error = replace_subscription(client, owner, old, url)
    cache.set(SUBSCRIPTION_CACHE_KEY, {"state": "active", "checked_at": time.time()}, timeout=None)
    if error:
        detail = f"created {new.get('uri')}; the old subscription {old.get('uri')} could not be deleted ({error})"
        return UpgradeResult(old, new, False, detail + ": delete it with `calendly_webhook delete URI`")
    return UpgradeResult(old, new, True, f"replaced {old.get('uri')} with {new.get('uri')}")


@dataclass(frozen=True)
class WatchResult:
    state: str
    recreated: dict | None = None
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


def watch(client: CalendlyClient, url: str, *, recreate: bool | None = None) -> WatchResult:
    """The scheduled check: alert on a disabled, missing or incomplete subscription.

    A disabled one is recreated if allowed; an incomplete one is only flagged (`upgrade` replaces it).
    """
    recreate = settings.CALENDLY_RECREATE_DISABLED_SUBSCRIPTION if recreate is None else recreate
    owner = find_owner(client)
    result = check(client, url, owner)
    if result.state == "active" and result.missing_kinds:
        sub = result.subscription or {}
        kinds = ", ".join(result.missing_kinds)
        alerts.raise_alert(
            f"subscription-incomplete:{sub.get('uri')}:{kinds}",
            alerts.SUBSCRIPTION_INCOMPLETE,
            f"the Calendly webhook subscription {sub.get('uri')} for {url} does not deliver {kinds}: calsync "
            "never hears of them. Run `manage.py calendly_webhook subscribe --upgrade`.",
        )
        return WatchResult("incomplete", detail=f"alert raised: lacks {kinds}")
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
    new, error = replace_subscription(client, owner, old, url)
    if error:  # harmless: a disabled subscription delivers nothing
        logger.warning("old calendly subscription %s not deleted: %s", old.get("uri"), error)
    return new


def replace_subscription(client: CalendlyClient, owner: Owner, old: dict, url: str) -> tuple[dict, str | None]:
    """Create the replacement (every handled kind), then delete `old`: (new, why the delete failed or None).

    Raises, and deletes nothing, if the create fails.
    """
    if not settings.CALENDLY_SIGNING_KEYS:
        raise ValueError("CALENDLY_SIGNING_KEY is not set, so a new subscription's deliveries could not be verified")
    create = {
        "organization": owner.organization,
        "scope": old.get("scope") or owner.scope,
        "user": old.get("user") or owner.user,
        "events": wanted_events(old),
        "signing_key": settings.CALENDLY_SIGNING_KEYS[0],
    }
    try:
        new = client.create_webhook_subscription(url=url, **create)
    except SubscriptionExists:
        # The disabled one still holds the URL: subscribe a variant that reaches the same view.
        new = client.create_webhook_subscription(url=with_generation(url, str(int(time.time()))), **create)
    logger.warning("calendly subscription %s replaced by %s", old.get("uri"), new.get("uri"))
    if old.get("uri") and old.get("uri") != new.get("uri"):
        try:
            client.delete_webhook_subscription(old["uri"])
        except CalendlyError as exc:
            return new, str(exc)
    return new, None
