from django.conf import settings
from django.contrib import admin
from django.urls import include, path

if settings.CALSYNC_SANDBOX:
    # Nobody should mistake the emulators' deals and meetings for real ones.
    admin.site.site_header = "calsync — SANDBOX (local Kommo/Zoom emulators, not real data)"
    admin.site.site_title = "calsync sandbox"
else:
    admin.site.site_header = "calsync"
    admin.site.site_title = "calsync"
admin.site.index_title = "Calendly → Kommo and Zoom"

urlpatterns = [
    path("", include("bookings.urls")),  # the Calendly webhook
    path("admin/", admin.site.urls),
]
