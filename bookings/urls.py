from django.urls import path

from bookings.webhooks import CalendlyWebhookView

webhook = CalendlyWebhookView.as_view()

urlpatterns = [
    # Both spellings answer directly: Calendly counts a redirect (APPEND_SLASH's 301) as a failed delivery.
    path("webhooks/calendly/", webhook, name="calendly-webhook"),
    path("webhooks/calendly", webhook),
]
