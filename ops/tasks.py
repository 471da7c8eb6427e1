"""Thin django-q2 entry points for the ops schedules. The logic lives in `ops.alerts`."""

from __future__ import annotations

from ops import alerts


def send_alert_digest() -> str:
    """Scheduled every few minutes: record what needs a human, then mail a digest if the interval allows."""
    new = alerts.collect_alerts()
    result = alerts.send_alert_digest()
    return f"{new} new alert(s); {result}"
