"""Admin building blocks shared by the apps."""

from __future__ import annotations

from django.http import HttpRequest


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
