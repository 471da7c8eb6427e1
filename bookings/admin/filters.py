"""List filters of the bookings admin."""

from __future__ import annotations

from django.contrib import admin

from bookings.health import SyncHealth
from bookings.models import Booking


class SyncHealthFilter(admin.SimpleListFilter):
    title = "sync health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return SyncHealth.choices

    def queryset(self, request, queryset):
        # The admin's queryset carries the `sync_health` annotation (BookingAdmin.get_queryset).
        if self.value() in SyncHealth.values:
            return queryset.filter(sync_health=self.value())
        return queryset


class HostFilter(admin.SimpleListFilter):
    title = "host"
    parameter_name = "host"

    def lookups(self, request, model_admin):
        hosts = Booking.objects.exclude(host_email="").values_list("host_email", "host_name").distinct()
        names: dict[str, str] = {}
        for email, name in hosts.order_by("host_email"):
            names.setdefault(email, name or email)
        return sorted(names.items(), key=lambda item: item[1].lower())

    def queryset(self, request, queryset):
        return queryset.filter(host_email=self.value()) if self.value() else queryset


class LinkProblemFilter(admin.SimpleListFilter):
    title = "reschedule link problem"
    parameter_name = "link_problem"

    def lookups(self, request, model_admin):
        return [("yes", "Needs a look"), ("no", "None")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(link_problem="")
        if self.value() == "no":
            return queryset.filter(link_problem="")
        return queryset
