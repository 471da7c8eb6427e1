"""The sandbox's admin login: made once, and a way back in after a restart (the password is printed once)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import authenticate as django_authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sandbox_on(settings):
    settings.CALSYNC_SANDBOX = True


def authenticate(**credentials):
    """As the admin login form does: with a request (login throttling refuses to work without one)."""
    from django.test import RequestFactory

    return django_authenticate(RequestFactory().post("/admin/login/"), **credentials)


def printed_password(output: str) -> str:
    return re.search(r"password (\S+)$", output.strip()).group(1)


def test_the_first_start_makes_an_admin_and_prints_its_password(capsys):
    call_command("sandbox_admin")
    password = printed_password(capsys.readouterr().out)
    assert authenticate(username="admin", password=password).is_superuser


def test_a_restart_says_how_to_reset_the_password(capsys):
    call_command("sandbox_admin")
    capsys.readouterr()
    call_command("sandbox_admin")
    output = capsys.readouterr().out
    assert "exists already" in output and "manage.py sandbox_admin --reset-password" in output


def test_reset_password_sets_and_prints_a_new_random_one(capsys):
    call_command("sandbox_admin")
    old = printed_password(capsys.readouterr().out)
    call_command("sandbox_admin", "--reset-password")
    new = printed_password(capsys.readouterr().out)
    assert new != old
    assert authenticate(username="admin", password=old) is None
    assert authenticate(username="admin", password=new).is_superuser


def test_reset_password_makes_the_admin_when_someone_else_is_the_superuser(capsys):
    User.objects.create_superuser("someone", password="x")
    call_command("sandbox_admin", "--reset-password")
    assert authenticate(username="admin", password=printed_password(capsys.readouterr().out)).is_superuser


def test_only_in_the_sandbox(settings):
    settings.CALSYNC_SANDBOX = False
    settings.KOMMO_BASE_URL = "https://acme.kommo.com"
    with pytest.raises(CommandError, match="only in the sandbox"):
        call_command("sandbox_admin", "--reset-password")


def test_reset_works_from_a_second_terminal_where_nothing_real_is_configured(settings, monkeypatch, capsys):
    """scripts/run.sh sets CALSYNC_SANDBOX only for its own processes; a second terminal has only .env."""
    settings.CALSYNC_SANDBOX = False
    settings.KOMMO_BASE_URL = settings.ZOOM_CLIENT_ID = ""
    monkeypatch.delenv("CALSYNC_SANDBOX", raising=False)
    call_command("sandbox_admin", "--reset-password")
    assert authenticate(username="admin", password=printed_password(capsys.readouterr().out)).is_superuser
    monkeypatch.setenv("CALSYNC_SANDBOX", "false")
    with pytest.raises(CommandError, match="only in the sandbox"):
        call_command("sandbox_admin", "--reset-password")
