"""The alert digest's task moved from the project package to the ops app: point its schedule there.

Matched by the task path, not the schedule's name, so a schedule an operator renamed is moved too.
`calsync.tasks.send_alert_digest` stays as an alias for a task queued before this migration ran.
"""

from django.db import migrations

MOVED = {"calsync.tasks.send_alert_digest": "ops.tasks.send_alert_digest"}


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
        ("bookings", "0007_operations_schedules"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
