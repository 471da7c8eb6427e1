"""``manage.py sandbox_admin``: a first admin login for the sandbox, so a newcomer can look around at once.

Only when no superuser exists yet; the password is random and printed once. ``--reset-password`` gives the
sandbox's ``admin`` user a new random password and prints it (the way back in after a restart, since the
first one is printed only once). Never used outside the sandbox.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

USERNAME = "admin"
RESET_HINT = ".venv/bin/python manage.py sandbox_admin --reset-password"


class Command(BaseCommand):
    help = "Create a sandbox superuser with a random password (sandbox only, only if none exists)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help=f"give the sandbox's {USERNAME!r} superuser a new random password and print it",
        )

    def handle(self, *args, **options) -> None:
        if not in_sandbox():
            raise CommandError("only in the sandbox (CALSYNC_SANDBOX=true); use createsuperuser otherwise")
        User = get_user_model()
        if options["reset_password"]:
            password = reset_password(USERNAME)
            self.stdout.write(f"admin login for the sandbox: user {USERNAME}, new password {password}")
            return
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(f"an admin user exists already: log in with it (forgot the password? {RESET_HINT})")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(USERNAME, email="", password=password)
        self.stdout.write(f"admin login for the sandbox: user {USERNAME}, password {password}")


def in_sandbox() -> bool:
    """CALSYNC_SANDBOX is on (scripts/run.sh turns it on for the processes it starts), or, from a second
    terminal, nothing points calsync at a real Kommo or Zoom: the case where scripts/run.sh runs the sandbox."""
    if settings.CALSYNC_SANDBOX:
        return True
    switched_off = os.environ.get("CALSYNC_SANDBOX", "").strip().lower() in ("false", "0", "no", "off")
    return not (settings.KOMMO_BASE_URL or settings.ZOOM_CLIENT_ID or switched_off)


def reset_password(username: str) -> str:
    """A new random password for `username`, made an active superuser (created when missing)."""
    User = get_user_model()
    password = secrets.token_urlsafe(12)
    user, _ = User.objects.get_or_create(username=username)
    user.is_superuser = user.is_staff = user.is_active = True
    user.set_password(password)
    user.save()
    return password
