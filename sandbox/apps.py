from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Sandbox (local emulators)"

    def ready(self) -> None:
        if settings.CALSYNC_SANDBOX:
            from django.contrib import admin

            # The URLconf sets the admin header when it is imported: import it first, then label the sandbox,
            # so nobody mistakes the emulators' deals and meetings for real ones.
            import_module(settings.ROOT_URLCONF)
            admin.site.site_header = "calsync — SANDBOX (local Kommo/Zoom emulators, not real data)"
            admin.site.site_title = "calsync sandbox"
