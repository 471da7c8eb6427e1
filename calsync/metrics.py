"""Prometheus metrics, computed from the database at scrape time.

Why from the database and not prometheus-client's in-process counters: calsync runs as several gunicorn
workers plus one or more django-q2 clusters, often in other containers or on other machines. Events are
processed by the workers, but Prometheus scrapes the web process. Multiprocess mode only merges
processes that share one directory on one host, so it would miss the worker containers. Every figure
here is already a row in the database (events, processing attempts, bookings, API call counters), so a
custom collector reads them when Prometheus scrapes, and every process gives the same answer.
prometheus-client supplies the metric families and the exposition format.

Gauges (queue depth, failed events, events by status…) are counted at scrape time with indexed,
grouped queries. Counters and the processing-time histogram are kept as things happen, in
`calsync.models.MetricCount` rows: a scrape then reads a few dozen rows whatever the size of the event
tables, and a counter never goes down when retention deletes old events. They start from zero when
the table is created; Prometheus reads that as a counter reset.

`observe_api_call(service, status)` counts one external API call; it adds one to a shared counter row
with a single atomic UPDATE. The clients do not call it themselves: the session they are given
(`calsync.http.build_session(service=…)`) calls it once per HTTP request, token requests included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

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


RECEIVED = "events_received"  # labels: kind, source
DELIVERIES = "deliveries"  # labels: kind
ATTEMPTS = "attempts"  # labels: kind, outcome
DURATION_BUCKET = "processing_seconds_bucket"  # labels: le (not cumulative: the bucket it fell in)
DURATION_SUM = "processing_seconds_sum"


def _labels_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))[:300]


def add_to_counter(name: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
    """Add `amount` to one counter row (created on first use). Never raises: a metrics problem must
    not fail a delivery or a sync."""
    from django.db import IntegrityError, transaction
    from django.db.models import F

    from calsync.models import MetricCount

    key = _labels_key(labels or {})
    try:
        rows = MetricCount.objects.filter(name=name, labels=key)
        if rows.update(value=F("value") + amount):
            return
        try:
            with transaction.atomic():
                MetricCount.objects.create(name=name, labels=key, value=amount)
        except IntegrityError:  # another process created the row first
            rows.update(value=F("value") + amount)
    except Exception:
        logger.debug("could not count %s", name, exc_info=True)


def count_event_stored(kind: str, source: str) -> None:
    """A new event was stored: one more received event and one more delivery of its kind.

    On the acknowledgement's path: both rows in one UPDATE once they exist (each statement is ~0.4 ms
    of the web process's CPU); the first of a kind creates them one by one."""
    from django.db.models import F, Q

    from calsync.models import MetricCount

    received, delivered = _labels_key({"kind": kind, "source": source}), _labels_key({"kind": kind})
    try:
        both = Q(name=RECEIVED, labels=received) | Q(name=DELIVERIES, labels=delivered)
        if MetricCount.objects.filter(both).update(value=F("value") + 1) == 2:
            return
        # A row is missing (rare): undo the half done, and count each through the creating path.
        MetricCount.objects.filter(both).update(value=F("value") - 1)
    except Exception:
        logger.debug("could not count a stored event", exc_info=True)
        return
    add_to_counter(RECEIVED, {"kind": kind, "source": source})
    add_to_counter(DELIVERIES, {"kind": kind})


def count_redelivery(kind: str) -> None:
    add_to_counter(DELIVERIES, {"kind": kind})


def observe_attempt(kind: str, outcome: str, seconds: float) -> None:
    """A processing attempt finished: count its outcome and put its duration in the histogram."""
    add_to_counter(ATTEMPTS, {"kind": kind, "outcome": outcome})
    seconds = max(0.0, seconds)
    bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
    add_to_counter(DURATION_BUCKET, {"le": bucket})
    add_to_counter(DURATION_SUM, {}, seconds)


def _counters() -> dict[str, list[tuple[dict[str, str], float]]]:
    from calsync.models import MetricCount

    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in MetricCount.objects.order_by("name", "labels").values_list("name", "labels", "value"):
        found.setdefault(name, []).append((json.loads(labels or "{}"), value))
    return found


class CalsyncCollector:
    """Reads the current figures from the database each time Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        from django.core.cache import cache
        from django.db.models import Count
        from django.utils import timezone

        from bookings.models import Booking, SyncDrift, WebhookEvent
        from calsync.models import ApiCallCount

        status = WebhookEvent.Status
        now = timezone.now()
        counters = _counters()

        received = CounterMetricFamily(
            "calsync_webhook_events_received",
            "Calendly events stored, by kind and source (webhook or reconciliation)",
            labels=["kind", "source"],
        )
        for labels, value in counters.get(RECEIVED, []):
            received.add_metric([labels.get("kind", ""), labels.get("source", "")], value)
        yield received
        deliveries = CounterMetricFamily(
            "calsync_webhook_deliveries", "Calendly deliveries including redeliveries, by kind", labels=["kind"]
        )
        for labels, value in counters.get(DELIVERIES, []):
            deliveries.add_metric([labels.get("kind", "")], value)
        yield deliveries
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
        yield by_status

        outcomes = CounterMetricFamily(
            "calsync_event_processing_attempts",
            "Finished processing attempts by event kind and outcome",
            labels=["kind", "outcome"],
        )
        for labels, value in counters.get(ATTEMPTS, []):
            outcomes.add_metric([labels.get("kind", ""), labels.get("outcome", "")], value)
        yield outcomes

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
