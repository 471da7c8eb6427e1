from django.conf import settings
from django.contrib import admin
from django.urls import path

from bookings.webhooks import CalendlyWebhookView

if settings.CALSYNC_SANDBOX:
    # Nobody should mistake the emulators' deals and meetings for real ones.
    admin.site.site_header = "calsync — SANDBOX (local Kommo/Zoom emulators, not real data)"
    admin.site.site_title = "calsync sandbox"
else:
    admin.site.site_header = "calsync"
    admin.site.site_title = "calsync"
admin.site.index_title = "Calendly → Kommo and Zoom"

webhook = CalendlyWebhookView.as_view()

urlpatterns = [
    # Both spellings answer directly: Calendly counts a redirect (APPEND_SLASH's 301) as a failed delivery.
    path("webhooks/calendly/", webhook, name="calendly-webhook"),
    path("webhooks/calendly", webhook),
    path("admin/", admin.site.urls),
]
