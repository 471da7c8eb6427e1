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
    # Kommo sync is on by default and idles until configured; only a half-done configuration is a mistake.
    oauth = [settings.KOMMO_CLIENT_ID, settings.KOMMO_CLIENT_SECRET, settings.KOMMO_REDIRECT_URI]
    if not all(oauth) and bool(settings.KOMMO_BASE_URL) != bool(settings.KOMMO_ACCESS_TOKEN):
        missing = "KOMMO_ACCESS_TOKEN" if settings.KOMMO_BASE_URL else "KOMMO_BASE_URL"
        problems.append(
            Warning(
                f"Kommo is half configured: {missing} is not set, so nothing reaches Kommo.",
                hint="Set both KOMMO_BASE_URL and KOMMO_ACCESS_TOKEN (or the OAuth settings), or neither.",
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
