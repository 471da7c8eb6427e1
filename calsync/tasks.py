"""Thin django-q2 entry points for calsync's own schedules. The logic lives in `calsync.alerts`."""

from __future__ import annotations

from calsync import alerts


def send_alert_digest() -> str:
    """Scheduled every few minutes: record what needs a human, then mail a digest if the interval allows."""
    new = alerts.collect_alerts()
    result = alerts.send_alert_digest()
    return f"{new} new alert(s); {result}"
