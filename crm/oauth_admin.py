"""The admin's "Kommo connection" page: connect calsync to Kommo with OAuth 2.0, see its state, disconnect.

Only staff with `crm.connect_kommo` see it. Connect sends them to Kommo's consent page with a random
`state` kept in their session; Kommo comes back to the callback with `code`, `state` and `referer` (the
account's host). The state must match (CSRF), then the code is exchanged and the tokens stored. No page
ever shows a token.
"""

from __future__ import annotations

import secrets
import time

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from calsync.errors import SyncError
from crm import oauth
from crm.models import KommoConnection

SESSION_KEY = "crm_kommo_oauth_state"
PERMISSION = "crm.connect_kommo"


@admin.register(KommoConnection)
class KommoConnectionAdmin(admin.ModelAdmin):
    """No list, no form: the changelist is the connection page (tokens never reach a template)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("connect/", view(require_POST(self.connect_view)), name="crm_kommoconnection_connect"),
            path("callback/", view(self.callback_view), name="crm_kommoconnection_callback"),
            path("disconnect/", view(require_POST(self.disconnect_view)), name="crm_kommoconnection_disconnect"),
            path("", view(self.changelist_view), name="crm_kommoconnection_changelist"),
        ]

    def _require(self, request: HttpRequest) -> None:
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied

    def _page(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:crm_kommoconnection_changelist"))

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        self._require(request)
        return self._render(request, extra_context=extra_context)

    def _render(self, request: HttpRequest, *, error: str = "", status: int = 200, extra_context=None) -> HttpResponse:
        connection = oauth.current_connection()
        missing = [
            name
            for name in ("KOMMO_CLIENT_ID", "KOMMO_CLIENT_SECRET", "KOMMO_REDIRECT_URI")
            if not getattr(settings, name)
        ]
        if connection is not None and not missing:
            in_use = f"OAuth connection to {connection.host}"
        elif settings.KOMMO_BASE_URL and settings.KOMMO_ACCESS_TOKEN:
            in_use = f"the long-lived token (KOMMO_ACCESS_TOKEN) for {settings.KOMMO_BASE_URL}"
        else:
            in_use = ""
        context = {
            **self.admin_site.each_context(request),
            "title": "Kommo connection",
            "opts": self.model._meta,
            # Only what the page needs: never the row itself, so no template can reach a token.
            "connection": _describe(connection),
            "missing": missing,
            "redirect_uri": settings.KOMMO_REDIRECT_URI,
            "in_use": in_use,
            "error": error,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "crm/oauth/connection.html", context, status=status)

    def connect_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request)
        if not oauth.oauth_configured():
            self.message_user(
                request, "Set KOMMO_CLIENT_ID, KOMMO_CLIENT_SECRET and KOMMO_REDIRECT_URI first.", messages.ERROR
            )
            return self._page()
        state = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = {"state": state, "issued_at": time.time()}
        return HttpResponseRedirect(oauth.authorization_url(state))

    def callback_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request)
        expected = request.session.pop(SESSION_KEY, None)  # single use, whatever happens next
        given = request.GET.get("state", "")
        if (
            not isinstance(expected, dict)
            or not given
            or not secrets.compare_digest(str(expected.get("state", "")), given)
        ):
            return self._render(
                request,
                error="This answer from Kommo does not belong to a connection started here (state mismatch). "
                "Nothing was changed; press Connect again.",
                status=400,
            )
        if time.time() - float(expected.get("issued_at", 0)) > oauth.AUTHORIZATION_CODE_LIFETIME.total_seconds():
            return self._render(request, error="The connection attempt is too old; press Connect again.", status=400)
        if request.GET.get("error"):
            self.message_user(request, "Kommo access was not granted; nothing was changed.", messages.WARNING)
            return self._page()
        if request.GET.get("client_id") and request.GET["client_id"] != settings.KOMMO_CLIENT_ID:
            return self._render(request, error="Kommo answered for another integration (client_id).", status=400)
        try:
            connection = oauth.connect(request.GET.get("code", ""), request.GET.get("referer", ""), user=request.user)
        except SyncError as exc:
            self.message_user(request, f"Kommo was not connected: {exc}", messages.ERROR)
            return self._page()
        self.message_user(request, f"Connected to {connection.host}.", messages.SUCCESS)
        return self._page()

    def disconnect_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request)
        if oauth.disconnect():
            self.message_user(
                request, "Disconnected. calsync uses KOMMO_ACCESS_TOKEN again, if it is set.", messages.SUCCESS
            )
        return self._page()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        return self._page()


def _describe(connection: KommoConnection | None) -> dict | None:
    if connection is None:
        return None
    return {
        "host": connection.host,
        "ok": connection.state == KommoConnection.State.CONNECTED,
        "state": connection.get_state_display(),
        "expires_at": connection.expires_at,
        "refresh_expires_at": connection.refresh_expires_at,
        "connected_at": connection.connected_at,
        "connected_by": str(connection.connected_by or "—"),
        "refreshed_at": connection.refreshed_at,
        "last_error": connection.last_error,
    }
