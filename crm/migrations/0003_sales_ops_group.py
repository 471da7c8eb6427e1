"""The "Sales ops" group: exactly what the daily work needs, nothing more.

See events and bookings (and what was written to Kommo and Zoom), replay events / sync bookings again,
resolve the review queue, and switch off a remembered deal assignment. No add/change/delete of data
that Calendly, Kommo or Zoom own; no users, groups, settings or task-queue internals.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Sales ops"
PERMISSIONS = [
    ("bookings", "view_webhookevent"),
    ("bookings", "view_processingattempt"),
    ("bookings", "view_booking"),
    ("bookings", "replay_webhookevent"),
    ("conferencing", "view_zoommeeting"),
    ("crm", "view_kommolink"),
    ("crm", "view_reviewitem"),
    ("crm", "resolve_reviewitem"),
    ("crm", "view_remembereddeal"),
    ("crm", "change_remembereddeal"),
]


def create_group(apps, schema_editor):
    # Permissions are normally made after all migrations ran; this migration needs them now.
    for app_config in apps.get_app_configs():
        original, app_config.models_module = getattr(app_config, "models_module", None), True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    wanted = [Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in PERMISSIONS]
    group.permissions.set(wanted)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("bookings", "0005_replay_permission"),
        ("conferencing", "0001_initial"),
        ("crm", "0002_review_queue"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
