"""Task paths a schedule or a queued task may still name after the move to ops and the backfill rename."""

from unittest import mock

from django.utils.module_loading import import_string

from bookings import tasks as bookings_tasks


def test_old_backfill_task_path_is_the_backfill():
    assert import_string("bookings.tasks.reconcile_recent_bookings") is bookings_tasks.backfill_recent_bookings


def test_old_alert_digest_task_path_runs_the_ops_task():
    with mock.patch("ops.tasks.send_alert_digest", return_value="ran") as digest:
        assert import_string("calsync.tasks.send_alert_digest")() == "ran"
    digest.assert_called_once_with()
