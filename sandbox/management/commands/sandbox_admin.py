"""``manage.py sandbox_admin``: a first admin login for the sandbox, so a newcomer can look around at once.

Only when no superuser exists yet; the password is random and printed once. Never used outside the sandbox.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a sandbox superuser with a random password (sandbox only, only if none exists)."

    def handle(self, *args, **options) -> None:
        if not settings.CALSYNC_SANDBOX:
            raise CommandError("only in the sandbox (CALSYNC_SANDBOX=true); use createsuperuser otherwise")
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("an admin user exists already: log in with it")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", email="", password=password)
        self.stdout.write(f"admin login for the sandbox: user admin, password {password}")
