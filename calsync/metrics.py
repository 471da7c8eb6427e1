"""Prometheus metrics, computed from the database at scrape time.

Why from the database and not prometheus-client's in-process counters: calsync runs as several gunicorn
workers plus one or more django-q2 clusters, often in other containers or on other machines. Events are
processed by the workers, but Prometheus scrapes the web process. Multiprocess mode only merges
processes that share one directory on one host, so it would miss the worker containers. Every figure
here is already a row in the database (events, processing attempts, bookings, API call counters), so a
custom collector reads them when Prometheus scrapes, and every process gives the same answer.
prometheus-client supplies the metric families and the exposition format.

`observe_api_call(service, status)` counts one external API call; it adds one to a shared counter row
with a single atomic UPDATE. The clients do not call it themselves: the session they are given
(`calsync.http.build_session(service=…)`) calls it once per HTTP request, token requests included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

logger = logging.getLogger(__name__)

# Seconds. One event's processing runs Zoom and Kommo calls behind Kommo's 7-per-second limit.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SUBSCRIPTION_CACHE_KEY = "calsync:calendly-subscription-state"


def observe_api_call(service: str, status: int | str) -> None:
    """Count one call to an external API (`status`: the HTTP status, or "timeout"/"error").

    Never raises: a metrics problem must not fail a sync.
    """
    from django.db import IntegrityError, transaction
    from django.db.models import F

    from calsync.models import ApiCallCount

    status = str(status)[:20]
    try:
        if ApiCallCount.objects.filter(service=service, status=status).update(count=F("count") + 1):
            return
        try:
            with transaction.atomic():
                ApiCallCount.objects.create(service=service, status=status, count=1)
        except IntegrityError:  # another process created the row first
            ApiCallCount.objects.filter(service=service, status=status).update(count=F("count") + 1)
    except Exception:
        logger.debug("could not count an API call to %s", service, exc_info=True)


class CalsyncCollector:
    """Reads the current figures from the database each time Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        from django.core.cache import cache
        from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
        from django.utils import timezone

        from bookings.models import Booking, ProcessingAttempt, SyncDrift, WebhookEvent
        from calsync.models import ApiCallCount

        status = WebhookEvent.Status
        now = timezone.now()

        received = CounterMetricFamily(
            "calsync_webhook_events_received",
            "Calendly events stored, by kind and source (webhook or reconciliation)",
            labels=["kind", "source"],
        )
        deliveries = CounterMetricFamily(
            "calsync_webhook_deliveries", "Calendly deliveries including redeliveries, by kind", labels=["kind"]
        )
        by_status = GaugeMetricFamily(
            "calsync_webhook_events", "Stored Calendly events by kind and current outcome", labels=["kind", "status"]
        )
        per_kind_source: dict[tuple[str, str], int] = {}
        per_kind_deliveries: dict[str, int] = {}
        for row in WebhookEvent.objects.values("kind", "source", "status").annotate(n=Count("pk"), d=Sum("deliveries")):
            key = (row["kind"], row["source"])
            per_kind_source[key] = per_kind_source.get(key, 0) + row["n"]
            per_kind_deliveries[row["kind"]] = per_kind_deliveries.get(row["kind"], 0) + (row["d"] or 0)
            by_status.add_metric([row["kind"], row["status"]], row["n"])
        for (kind, source), n in sorted(per_kind_source.items()):
            received.add_metric([kind, source], n)
        for kind, n in sorted(per_kind_deliveries.items()):
            deliveries.add_metric([kind], n)
        yield received
        yield deliveries
        yield by_status

        finished = ProcessingAttempt.objects.filter(finished_at__isnull=False)
        outcomes = CounterMetricFamily(
            "calsync_event_processing_attempts",
            "Finished processing attempts by event kind and outcome",
            labels=["kind", "outcome"],
        )
        for row in finished.values("event__kind", "outcome").annotate(n=Count("pk")).order_by("event__kind", "outcome"):
            outcomes.add_metric([row["event__kind"], row["outcome"]], row["n"])
        yield outcomes

        # One aggregate query: a count per bucket (cumulative, as Prometheus wants) and the sum.
        timed = finished.annotate(
            took=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        )
        aggregates = {
            f"le_{i}": Count("pk", filter=Q(took__lte=timedelta(seconds=b))) for i, b in enumerate(LATENCY_BUCKETS)
        }
        figures = timed.aggregate(total=Count("pk"), took_sum=Sum("took"), **aggregates)
        buckets = [(str(b), figures[f"le_{i}"]) for i, b in enumerate(LATENCY_BUCKETS)]
        buckets.append(("+Inf", figures["total"]))
        took_sum = figures["took_sum"]
        yield HistogramMetricFamily(
            "calsync_event_processing_seconds",
            "Time to process one event (apply it and run every reconciler)",
            buckets=buckets,
            sum_value=took_sum.total_seconds() if took_sum else 0.0,
        )

        api = CounterMetricFamily(
            "calsync_external_api_calls", "Calls to external APIs by service and status", labels=["service", "status"]
        )
        for row in ApiCallCount.objects.order_by("service", "status").values("service", "status", "count"):
            api.add_metric([row["service"], row["status"]], row["count"])
        yield api

        drift = CounterMetricFamily(
            "calsync_drift",
            "Tasks and meetings found changed outside calsync (deleted, completed, moved), by service and kind",
            labels=["service", "kind"],
        )
        for row in SyncDrift.objects.values("service", "kind").annotate(n=Count("pk")).order_by("service", "kind"):
            drift.add_metric([row["service"], row["kind"]], row["n"])
        yield drift

        events = WebhookEvent.objects
        yield GaugeMetricFamily(
            "calsync_queue_depth",
            "Events waiting for a worker or being processed",
            value=events.filter(status__in=[status.RECEIVED, status.PROCESSING]).count(),
        )
        yield GaugeMetricFamily(
            "calsync_events_retry_pending",
            "Failed events with an automatic retry still scheduled",
            value=events.filter(status=status.FAILED, next_attempt_at__isnull=False).count(),
        )
        yield GaugeMetricFamily(
            "calsync_failed_events",
            "Failed events with no automatic retry left (need a human)",
            value=events.filter(status=status.FAILED, next_attempt_at__isnull=True).count(),
        )
        oldest = (
            events.filter(status__in=[status.RECEIVED, status.PROCESSING])
            .order_by("received_at")
            .values_list("received_at", flat=True)
            .first()
        )
        yield GaugeMetricFamily(
            "calsync_oldest_unprocessed_event_age_seconds",
            "Age of the oldest event not yet processed (0 when none)",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )
        yield GaugeMetricFamily(
            "calsync_bookings_awaiting_review",
            "Bookings whose Kommo deal needs a human to choose it",
            value=Booking.objects.filter(crm_status=Booking.CrmStatus.NEEDS_REVIEW).count(),
        )
        try:
            state = cache.get(SUBSCRIPTION_CACHE_KEY)
        except Exception:  # the cache table may be missing (createcachetable not run): skip, do not fail
            state = None
        if isinstance(state, dict):
            yield GaugeMetricFamily(
                "calsync_calendly_subscription_active",
                "1 when the last check found the Calendly webhook subscription active",
                value=1.0 if state.get("state") == "active" else 0.0,
            )
            yield GaugeMetricFamily(
                "calsync_calendly_subscription_checked_timestamp_seconds",
                "When the Calendly webhook subscription was last checked (Unix time)",
                value=float(state.get("checked_at", 0)),
            )


def render_metrics() -> bytes:
    """The Prometheus text exposition of every calsync metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CalsyncCollector())
    return generate_latest(registry)
