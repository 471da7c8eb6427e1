"""Start-up checks for the Kommo settings (a wrong policy name would otherwise only show up per booking)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from crm.matching import MatchPolicy


@register()
def check_kommo_settings(app_configs, **kwargs):
    problems = []
    try:
        MatchPolicy(several=settings.KOMMO_SEVERAL_DEALS_POLICY, none=settings.KOMMO_NO_DEAL_POLICY)
    except ValueError as exc:
        problems.append(Error(str(exc), id="crm.E001"))
    oauth = [settings.KOMMO_CLIENT_ID, settings.KOMMO_CLIENT_SECRET, settings.KOMMO_REDIRECT_URI]
    if any("crm.sync.reconcile" in path for path in settings.CALSYNC_RECONCILERS) and not (
        (settings.KOMMO_BASE_URL and settings.KOMMO_ACCESS_TOKEN) or all(oauth)
    ):
        problems.append(
            Warning(
                "crm.sync.reconcile is on but KOMMO_BASE_URL / KOMMO_ACCESS_TOKEN are not set: nothing reaches Kommo.",
                hint="Or set KOMMO_CLIENT_ID, KOMMO_CLIENT_SECRET, KOMMO_REDIRECT_URI and connect Kommo in the admin.",
                id="crm.W001",
            )
        )
    if any(oauth) and not all(oauth):
        problems.append(
            Warning(
                "Kommo OAuth is half configured: set KOMMO_CLIENT_ID, KOMMO_CLIENT_SECRET and KOMMO_REDIRECT_URI.",
                id="crm.W003",
            )
        )
    if settings.KOMMO_MAX_RPS > 7:
        problems.append(Warning("KOMMO_MAX_RPS above 7 risks 429s and an IP block by Kommo.", id="crm.W002"))
    return problems
