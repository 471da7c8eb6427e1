"""Create the operations schedules idempotently (never in AppConfig.ready).

Each task does nothing (and says why) until its settings are filled in, so they are safe to have
everywhere. Operators may change the frequency in the admin (Django Q → Scheduled tasks); a later
migrate keeps their change, because only missing schedules are created.
"""

from django.db import migrations

SCHEDULES = {
    "calsync: watch Calendly subscription": {
        "func": "bookings.tasks.watch_calendly_subscription",
        "schedule_type": "I",
        "minutes": 10,
    },
    "calsync: reconcile Calendly bookings": {
        "func": "bookings.tasks.reconcile_recent_bookings",
        "schedule_type": "I",
        "minutes": 60,
    },
    "calsync: alert digest": {"func": "calsync.tasks.send_alert_digest", "schedule_type": "I", "minutes": 5},
    "calsync: retention": {"func": "bookings.tasks.redact_old_events", "schedule_type": "D"},
}


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, fields in SCHEDULES.items():
        # The function path is ours to keep right; the timing is the operator's once it exists.
        schedule, created = Schedule.objects.update_or_create(
            name=name, defaults={"func": fields["func"], "repeats": -1}
        )
        if created:
            schedule.schedule_type = fields["schedule_type"]
            schedule.minutes = fields.get("minutes")
            schedule.save(update_fields=["schedule_type", "minutes"])


def remove_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=list(SCHEDULES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0006_webhookevent_redacted_at"),
        ("calsync", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
