"""Create the Zoom hygiene schedule idempotently (never in AppConfig.ready).

It deletes meetings calsync made that no live booking needs any more (see conferencing.hygiene). It
does nothing until Zoom is configured. The timing is the operator's once the schedule exists.
"""

from django.db import migrations

NAME = "calsync: Zoom hygiene"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    schedule, created = Schedule.objects.update_or_create(
        name=NAME, defaults={"func": "conferencing.tasks.zoom_hygiene", "repeats": -1}
    )
    if created:
        schedule.schedule_type = "I"
        schedule.minutes = 360
        schedule.save(update_fields=["schedule_type", "minutes"])


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("conferencing", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
