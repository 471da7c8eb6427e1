"""Operational records shared by every app: alert bookkeeping and external API call counters.

Both live in the database because calsync runs as several processes on several machines (gunicorn
workers, django-q2 clusters): process memory would see only a slice of either.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Alert(models.Model):
    """Something a human should hear about. `key` makes raising it idempotent; a digest reports it once."""

    key = models.CharField(max_length=300, unique=True)
    kind = models.CharField(max_length=50, db_index=True)
    summary = models.TextField(help_text="One line for the digest. No secrets.")
    raised_at = models.DateTimeField(default=timezone.now)
    # NULL until a digest mail carried it.
    reported_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"


class ApiCallCount(models.Model):
    """Calls to an external API by service and status, counted across all processes (a Prometheus counter)."""

    service = models.CharField(max_length=30)
    status = models.CharField(max_length=20)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "status"], name="api_call_count_unique")]

    def __str__(self) -> str:
        return f"{self.service} {self.status}: {self.count}"


class MetricCount(models.Model):
    """One Prometheus counter value (a family and its labels), added to as things happen.

    Counting rows at scrape time would scan whole tables and would make a counter go down when
    retention deletes old events; these rows only ever grow, with one atomic UPDATE per change.
    """

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, blank=True, help_text="Sorted JSON object of label values.")
    value = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_count_unique")]

    def __str__(self) -> str:
        return f"{self.name}{self.labels}: {self.value:g}"
