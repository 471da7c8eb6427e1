"""scripts/run.sh: the local .env is private, and DEBUG never faces a network."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SAFETY = Path(__file__).resolve().parents[2] / "scripts" / "_local_safety.sh"


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source {SAFETY}; {script}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_first_start_env_file_is_readable_by_its_owner_only(tmp_path):
    old_umask = os.umask(0o022)  # a usual umask would make a plain open() world-readable
    try:
        result = _bash(f"write_local_env {sys.executable}", tmp_path)
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    env_file = tmp_path / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "CALENDLY_SIGNING_KEY=" in env_file.read_text()


def test_existing_env_file_is_never_overwritten(tmp_path):
    (tmp_path / ".env").write_text("DEBUG=false\n")
    result = _bash(f"write_local_env {sys.executable}", tmp_path)
    assert result.returncode != 0
    assert (tmp_path / ".env").read_text() == "DEBUG=false\n"


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "192.168.1.20:8000", "[::]:8000", "calsync.example.com:80", ":8000"])
def test_debug_on_a_network_address_is_refused(tmp_path, bind):
    result = _bash(f"refuse_debug_on_network True '{bind}'", tmp_path)
    assert result.returncode == 1
    assert "REFUSING" in result.stderr and "DEBUG" in result.stderr


@pytest.mark.parametrize(
    "bind", ["127.0.0.1:8000", "127.0.0.2:9000", "localhost:8000", "[::1]:8000", "unix:calsync.sock"]
)
def test_debug_on_loopback_is_allowed(tmp_path, bind):
    assert _bash(f"refuse_debug_on_network True '{bind}'", tmp_path).returncode == 0


def test_debug_off_may_bind_anywhere(tmp_path):
    assert _bash("refuse_debug_on_network False 0.0.0.0:8000", tmp_path).returncode == 0


def test_run_script_uses_the_checks_before_starting_anything():
    run = (SAFETY.parent / "run.sh").read_text()
    assert "write_local_env" in run and 'open(".env", "w")' not in run
    assert run.index("refuse_debug_on_network") < run.index("manage.py migrate")
