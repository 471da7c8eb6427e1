"""Admin building blocks shared by the apps."""

from __future__ import annotations

import re

from django.http import HttpRequest
from django.utils.html import format_html


class ReadOnlyAdminMixin:
    """Calendly, Kommo and Zoom own this data: the admin shows it and offers actions, never edits it."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReplayPermissionMixin:
    """The `permissions=["replay"]` of replay-like actions: replaying events, syncing bookings again."""

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.replay_webhookevent")


_WEB_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)


def web_link(url: str, text: str) -> str:
    """A link to `url` only when it is a plain http(s) address; anything else is shown as text.

    Join links come from payloads: a `javascript:` or `data:` URL must never become clickable.
    """
    if url and _WEB_URL.fullmatch(url):
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', url, text)
    return format_html("{} <code>{}</code>", text, url) if url else "—"
