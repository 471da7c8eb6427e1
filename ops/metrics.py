"""Prometheus metrics (`/metrics`), computed from the database at scrape time.

Every process gives the same answer because every figure is a row in the database: gauges (queue
depth, failed events, events by status…) are counted at scrape time with indexed, grouped queries;
counters and the processing-time histogram are the rows `calsync.metrics` adds to as things happen.
prometheus-client supplies the metric families and the exposition format.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from bookings.subscriptions import SUBSCRIPTION_CACHE_KEY
from calsync.metrics import (
    ATTEMPTS,
    DELIVERIES,
    DURATION_BUCKET,
    DURATION_SUM,
    LATENCY_BUCKETS,
    RECEIVED,
    read_counters,
)


class CalsyncCollector:
    """Reads the current figures from the database each time Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        counters = read_counters()
        yield from _event_counters(counters)
        yield _unfinished_events()
        yield from _processing(counters)
        yield _api_calls()
        yield _drift()
        yield from _queue()
        yield _awaiting_review()
        yield from _subscription()


def _counter(name: str, documentation: str, label_names: list[str], rows: list) -> CounterMetricFamily:
    """A counter family from stored (labels, value) rows; a label a row lacks is exported empty."""
    family = CounterMetricFamily(name, documentation, labels=label_names)
    for labels, value in rows:
        family.add_metric([labels.get(label, "") for label in label_names], value)
    return family


def _event_counters(counters: dict) -> Iterator[Metric]:
    yield _counter(
        "calsync_webhook_events_received",
        "Calendly events stored, by kind and source (webhook or reconciliation)",
        ["kind", "source"],
        counters.get(RECEIVED, []),
    )
    yield _counter(
        "calsync_webhook_deliveries",
        "Calendly deliveries including redeliveries, by kind",
        ["kind"],
        counters.get(DELIVERIES, []),
    )


def _unfinished_events() -> Metric:
    from django.db.models import Count

    from bookings.models import WebhookEvent

    status = WebhookEvent.Status
    by_status = GaugeMetricFamily(
        "calsync_webhook_events",
        "Stored Calendly events not finished yet (received, processing, failed), by kind and status",
        labels=["kind", "status"],
    )
    # Only the unfinished few, found through the status index: counting the done and ignored ones
    # would read every row of the table (their outcomes are in calsync_event_processing_attempts).
    unfinished = WebhookEvent.objects.filter(status__in=[status.RECEIVED, status.PROCESSING, status.FAILED])
    for row in unfinished.order_by().values("status", "kind").annotate(n=Count("pk")):
        by_status.add_metric([row["kind"], row["status"]], row["n"])
    return by_status


def _processing(counters: dict) -> Iterator[Metric]:
    yield _counter(
        "calsync_event_processing_attempts",
        "Finished processing attempts by event kind and outcome",
        ["kind", "outcome"],
        counters.get(ATTEMPTS, []),
    )

    per_bucket = {labels.get("le"): value for labels, value in counters.get(DURATION_BUCKET, [])}
    buckets, running = [], 0.0
    for bound in [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]:
        running += per_bucket.get(bound, 0.0)
        buckets.append((bound, running))
    took_sum = sum(value for _labels, value in counters.get(DURATION_SUM, []))
    yield HistogramMetricFamily(
        "calsync_event_processing_seconds",
        "Time to process one event (apply it and run every reconciler)",
        buckets=buckets,
        sum_value=took_sum,
    )


def _api_calls() -> Metric:
    from calsync.models import ApiCallCount

    api = CounterMetricFamily(
        "calsync_external_api_calls", "Calls to external APIs by service and status", labels=["service", "status"]
    )
    for row in ApiCallCount.objects.order_by("service", "status").values("service", "status", "count"):
        api.add_metric([row["service"], row["status"]], row["count"])
    return api


def _drift() -> Metric:
    from django.db.models import Count

    from bookings.models import SyncDrift

    drift = CounterMetricFamily(
        "calsync_drift",
        "Tasks and meetings found changed outside calsync (deleted, completed, moved), by service and kind",
        labels=["service", "kind"],
    )
    for row in SyncDrift.objects.values("service", "kind").annotate(n=Count("pk")).order_by("service", "kind"):
        drift.add_metric([row["service"], row["kind"]], row["n"])
    return drift


def _queue() -> Iterator[Metric]:
    from django.utils import timezone

    from bookings.models import WebhookEvent

    status = WebhookEvent.Status
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
        value=max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0,
    )


def _awaiting_review() -> Metric:
    from bookings.models import Booking

    return GaugeMetricFamily(
        "calsync_bookings_awaiting_review",
        "Bookings whose Kommo deal needs a human to choose it",
        value=Booking.objects.filter(crm_status=Booking.CrmStatus.NEEDS_REVIEW).count(),
    )


def _subscription() -> Iterator[Metric]:
    from django.core.cache import cache

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
