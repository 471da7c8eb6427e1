"""Read-only admin for alerts (what the digests carried) and the API call counters behind /metrics."""

from django.contrib import admin

from calsync.models import Alert, ApiCallCount


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("raised_at", "kind", "summary", "reported_at")
    list_filter = ("kind", "reported_at")
    search_fields = ("summary", "key")
    readonly_fields = ("key", "kind", "summary", "raised_at", "reported_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiCallCount)
class ApiCallCountAdmin(admin.ModelAdmin):
    list_display = ("service", "status", "count")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
