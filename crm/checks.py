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
    if any("crm.sync.reconcile" in path for path in settings.CALSYNC_RECONCILERS) and not (
        settings.KOMMO_BASE_URL and settings.KOMMO_ACCESS_TOKEN
    ):
        problems.append(
            Warning(
                "crm.sync.reconcile is on but KOMMO_BASE_URL / KOMMO_ACCESS_TOKEN are not set: nothing reaches Kommo.",
                id="crm.W001",
            )
        )
    if settings.KOMMO_MAX_RPS > 7:
        problems.append(Warning("KOMMO_MAX_RPS above 7 risks 429s and an IP block by Kommo.", id="crm.W002"))
    return problems
