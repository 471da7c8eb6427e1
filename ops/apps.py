from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: health and readiness probes, Prometheus metrics, the alert digest."""

    name = "ops"
    verbose_name = "Operations"
