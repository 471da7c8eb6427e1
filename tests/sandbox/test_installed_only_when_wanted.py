"""The sandbox app, its commands and its models exist only with CALSYNC_SANDBOX (or DEBUG) on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage_help(**env: str) -> str:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("CALSYNC_", "DEBUG", "DJANGO_", "PYTEST"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "help", "--commands"],
        cwd=ROOT,
        env={
            **keep,
            "DJANGO_SETTINGS_MODULE": "calsync.settings",
            "CALSYNC_READ_DOTENV": "false",
            "SECRET_KEY": "subprocess-only-" + "k" * 40,
            "DATABASE_URL": "sqlite:///:memory:",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("env", "installed"),
    [
        ({"DEBUG": "false"}, False),
        ({"DEBUG": "false", "CALSYNC_SANDBOX": "true"}, True),
        ({"DEBUG": "true"}, True),
    ],
)
def test_sandbox_commands_exist_only_when_wanted(env, installed):
    commands = manage_help(**env).split()
    for name in ("send_test_booking", "run_emulators", "sandbox_admin"):
        assert (name in commands) is installed, (name, env)
    assert "calendly_backfill" in commands and "calendly_reconcile" in commands  # the app's own, always
