"""Create the live-state verification schedule idempotently (never in AppConfig.ready).

It checks every live booking of the coming days against Kommo and Zoom (see bookings.verification).
CALSYNC_VERIFY_MINUTES sets its interval (the task keeps the schedule in step); 0 turns it off.
"""

from django.conf import settings
from django.db import migrations

NAME = "calsync: verify Kommo and Zoom"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    schedule, created = Schedule.objects.update_or_create(
        name=NAME, defaults={"func": "bookings.tasks.verify_live_bookings", "repeats": -1}
    )
    if created:
        schedule.schedule_type = "I"
        schedule.minutes = getattr(settings, "CALSYNC_VERIFY_MINUTES", 30) or 30
        schedule.save(update_fields=["schedule_type", "minutes"])


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0009_sync_drift"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
