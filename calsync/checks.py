"""System checks (dj-stripe style): warn at start-up about settings that would silently break intake."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string


@register(Tags.security)
def check_signing_key(app_configs, **kwargs):
    if settings.CALENDLY_SIGNING_KEYS:
        return []
    if settings.CALENDLY_ALLOW_UNSIGNED:
        return [
            Warning(
                "CALENDLY_ALLOW_UNSIGNED is on: unsigned webhook deliveries are accepted.",
                hint="Only for local experiments. Set CALENDLY_SIGNING_KEY and turn this off.",
                id="calsync.W002",
            )
        ]
    return [
        Warning(
            "CALENDLY_SIGNING_KEY is not set: the Calendly webhook refuses every delivery (503).",
            hint="Set CALENDLY_SIGNING_KEY to the signing key of your Calendly webhook subscription.",
            id="calsync.W001",
        )
    ]


@register()
def check_queue_and_pipeline(app_configs, **kwargs):
    problems = []
    q = settings.Q_CLUSTER
    if q.get("timeout") and q.get("retry") and q["retry"] <= q["timeout"]:
        problems.append(
            Error(
                "Q_CLUSTER retry must be greater than timeout, or a slow task runs twice.",
                id="calsync.E001",
            )
        )
    for path in settings.CALSYNC_RECONCILERS:
        try:
            import_string(path)
        except ImportError as exc:
            problems.append(Error(f"CALSYNC_RECONCILERS: cannot import {path!r} ({exc}).", id="calsync.E002"))
    if not settings.CALSYNC_RETRY_BACKOFF:
        problems.append(Warning("CALSYNC_RETRY_BACKOFF is empty: failed events are never retried.", id="calsync.W003"))
    return problems


@register(Tags.security, deploy=True)
def check_metrics_token(app_configs, **kwargs):
    """`check --deploy`: /metrics open to anyone who reaches the port in a production configuration."""
    if settings.DEBUG or not settings.CALSYNC_METRICS_ENABLED or settings.CALSYNC_METRICS_TOKEN:
        return []
    return [
        Warning(
            "CALSYNC_METRICS_TOKEN is not set: /metrics answers anyone who can reach the service.",
            hint="Set CALSYNC_METRICS_TOKEN (Prometheus sends it as a bearer token), or "
            "CALSYNC_METRICS_ENABLED=false if nothing scrapes it.",
            id="calsync.W004",
        )
    ]
