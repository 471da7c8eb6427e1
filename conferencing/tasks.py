"""Thin django-q2 entry points for the conferencing app. The logic lives in `conferencing.hygiene`."""

from __future__ import annotations

import logging

from django.utils import timezone

from calsync.alerts import ZOOM_HYGIENE, raise_alert
from conferencing import hygiene
from conferencing.sync import zoom_configured

logger = logging.getLogger(__name__)


def zoom_hygiene() -> str:
    """Scheduled (data migration 0002): delete leftover meetings; an info alert only when some were removed."""
    if not zoom_configured():
        return "Zoom not configured"
    report = hygiene.run()
    for line in report.lines():
        logger.info("zoom hygiene: %s", line)
    summary = report.summary()
    if report.removed:
        details = "; ".join(f.line() for f in report.removed[:20])
        raise_alert(f"zoom-hygiene:{timezone.now().isoformat()}", ZOOM_HYGIENE, f"{summary}: {details}")
    return summary
