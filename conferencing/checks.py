"""System checks for the Zoom settings: catch a typo at start-up, not at the first booking."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

AUTO_RECORDING = ("none", "local", "cloud")
CREDENTIALS = ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET")


@register()
def check_zoom_settings(app_configs, **kwargs):
    problems = []
    if settings.ZOOM_AUTO_RECORDING not in AUTO_RECORDING:
        problems.append(
            Error(
                f"ZOOM_AUTO_RECORDING must be one of {', '.join(AUTO_RECORDING)}.",
                hint="Zoom refuses meetings with any other value.",
                id="conferencing.E001",
            )
        )
    missing = [name for name in CREDENTIALS if not getattr(settings, name)]
    if missing and len(missing) < len(CREDENTIALS):
        problems.append(
            Warning(
                f"Zoom is half configured: {', '.join(missing)} not set, so no Zoom meetings are made.",
                hint="Set all three Server-to-Server OAuth values, or none.",
                id="conferencing.W001",
            )
        )
    return problems
