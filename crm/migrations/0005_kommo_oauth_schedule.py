"""Create the Kommo OAuth keep-fresh schedule idempotently (never in AppConfig.ready).

Without Kommo traffic for 3 months the refresh token would lapse; this refreshes the access token when
it is due even on quiet days. It does nothing (and says so) until OAuth is configured and connected.
Like bookings 0007: the function path is ours to keep right, the timing is the operator's once it exists.
"""

from django.db import migrations

NAME = "calsync: keep Kommo OAuth fresh"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    schedule, created = Schedule.objects.update_or_create(
        name=NAME, defaults={"func": "crm.tasks.keep_kommo_oauth_fresh", "repeats": -1}
    )
    if created:
        schedule.schedule_type = "I"
        schedule.minutes = 360
        schedule.save(update_fields=["schedule_type", "minutes"])


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0004_kommo_connection"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
