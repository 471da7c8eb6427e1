"""The Calendly catch-up is called backfill now: point its schedule at the renamed task.

Matched by the task path, so a schedule an operator renamed is moved too. The old path stays as an
alias in bookings.tasks for a task queued before this migration ran.
"""

from django.db import migrations

MOVED = {"bookings.tasks.reconcile_recent_bookings": "bookings.tasks.backfill_recent_bookings"}


def forwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for old, new in MOVED.items():
        Schedule.objects.filter(func=old).update(func=new)


def backwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for old, new in MOVED.items():
        Schedule.objects.filter(func=new).update(func=old)


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0011_booking_link_problem"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
