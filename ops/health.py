"""Probes and metrics: `/healthz` (process up), `/readyz` (can do its work), `/metrics` (Prometheus).

Answered by a middleware placed first, before host validation and the HTTPS redirect: container and
load-balancer probes and Prometheus call them by IP over plain HTTP from inside, which ALLOWED_HOSTS
would refuse. None of them returns data about bookings or people, nor any secret.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readiness() -> tuple[bool, dict]:
    """(ready, booleans and ages). Not ready when the database is unreachable or the queue lags."""
    from bookings.models import WebhookEvent

    report: dict = {"database": False}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        report["database"] = True
        oldest = (
            WebhookEvent.objects.filter(status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING])
            .order_by("received_at")
            .values_list("received_at", flat=True)
            .first()
        )
    except Exception as exc:  # any database failure means "not ready"; say which kind, never the DSN
        logger.warning("readyz: database unreachable (%s)", type(exc).__name__)
        return False, report
    age = round(max(0.0, (timezone.now() - oldest).total_seconds())) if oldest else 0
    bound = settings.CALSYNC_READY_MAX_QUEUE_LAG
    report["oldest_unprocessed_event_age_seconds"] = age
    report["queue_lag_ok"] = bound <= 0 or age <= bound
    return report["queue_lag_ok"], report


def readyz(request: HttpRequest) -> JsonResponse:
    ready, report = readiness()
    return JsonResponse({"status": "ok" if ready else "unavailable", **report}, status=200 if ready else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.CALSYNC_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JsonResponse({"error": "metrics need Authorization: Bearer <CALSYNC_METRICS_TOKEN>"}, status=401)
    from prometheus_client import CONTENT_TYPE_LATEST

    from ops.metrics import render_metrics

    try:
        body = render_metrics()
    except Exception as exc:
        logger.warning("metrics: could not read the database (%s)", type(exc).__name__)
        return JsonResponse({"error": "metrics unavailable"}, status=503)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            if request.path == HEALTH_PATH:
                return healthz(request)
            if request.path == READY_PATH:
                return readyz(request)
            if request.path == METRICS_PATH and settings.CALSYNC_METRICS_ENABLED:
                return metrics(request)
        return self.get_response(request)
