"""Old task paths, kept so that a task queued under its old name still runs after an upgrade.

The schedules name the new paths (migration ops 0001); the work is found by its dotted path at run
time, so the project package still imports no app.
"""

from __future__ import annotations

from django.utils.module_loading import import_string


def send_alert_digest() -> str:
    """Now `ops.tasks.send_alert_digest`."""
    return import_string("ops.tasks.send_alert_digest")()
