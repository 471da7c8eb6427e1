"""The newcomer commands: send_test_booking against the real webhook view, run_emulators' demo setup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command

from bookings.models import Booking, WebhookEvent
from sandbox import demo
from sandbox.management.commands.run_emulators import start_emulators


@pytest.fixture
def webhook_url(live_server) -> str:
    return f"{live_server.url}/webhooks/calendly/"


def test_send_test_booking_ends_with_stored_processed_events(webhook_url, capsys):
    call_command("send_test_booking", "--url", webhook_url, "--reschedule", "--cancel", "--seed", "1")
    output = capsys.readouterr().out
    assert output.count("→ 202") == 4 and "All accepted" in output
    events = WebhookEvent.objects.order_by("id")
    assert [e.kind for e in events] == ["invitee.created", "invitee.canceled", "invitee.created", "invitee.canceled"]
    assert {e.status for e in events} == {WebhookEvent.Status.DONE}
    old, new = Booking.objects.order_by("start_at")
    assert (old.status, new.status) == (Booking.Status.RESCHEDULED, Booking.Status.CANCELED)
    assert old.invitee_email == demo.DEMO_INVITEE_EMAIL and new.rescheduled_from == old


def test_duplicates_are_answered_as_redeliveries(webhook_url, capsys):
    call_command("send_test_booking", "--url", webhook_url, "--count", "2", "--duplicate", "--email", "x@y.example")
    output = capsys.readouterr().out
    assert output.count("→ 202") == 2 and output.count("→ 200") == 2 and '"duplicate":true' in output
    assert Booking.objects.filter(invitee_email="x@y.example").count() == 2


def test_a_wrong_key_is_reported_as_a_failure(webhook_url, capsys):
    with pytest.raises(CommandError, match="1 of 1 deliveries were not accepted"):
        call_command("send_test_booking", "--url", webhook_url, "--key", "not-the-key")
    assert "→ 401" in capsys.readouterr().out
    assert not WebhookEvent.objects.exists()


def test_no_signing_key_is_a_clear_error(settings):
    settings.CALENDLY_SIGNING_KEYS = []
    with pytest.raises(CommandError, match="CALENDLY_SIGNING_KEY"):
        call_command("send_test_booking")


def test_run_emulators_demo_crm_matches_the_sample_booking():
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0)
    try:
        env = demo.sandbox_env(kommo.url, zoom.url)
        auth = {"Authorization": f"Bearer {env['KOMMO_ACCESS_TOKEN']}"}
        found = requests.get(
            f"{env['KOMMO_BASE_URL']}/api/v4/contacts",
            params={"query": demo.DEMO_INVITEE_EMAIL, "with": "leads"},
            headers=auth,
            timeout=5,
        ).json()["_embedded"]["contacts"]
        assert len(found) == 2  # the contact, and one that only mentions her e-mail
        [lucia] = [c for c in found if c["custom_fields_values"][0]["values"][0]["value"] == demo.DEMO_INVITEE_EMAIL]
        ids = [lead["id"] for lead in lucia["_embedded"]["leads"]]
        leads = requests.get(
            f"{env['KOMMO_BASE_URL']}/api/v4/leads", params={"filter[id][]": ids}, headers=auth, timeout=5
        ).json()["_embedded"]["leads"]
        assert [lead["id"] for lead in leads if lead["status_id"] not in (142, 143)] == [demo.DEMO_OPEN_DEAL_ID]

        token = requests.post(
            env["ZOOM_OAUTH_URL"],
            auth=(env["ZOOM_CLIENT_ID"], env["ZOOM_CLIENT_SECRET"]),
            data={"grant_type": "account_credentials", "account_id": env["ZOOM_ACCOUNT_ID"]},
            timeout=5,
        ).json()["access_token"]
        host = requests.get(
            f"{env['ZOOM_API_URL']}/users/{env['ZOOM_DEFAULT_USER']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert host.json()["email"] == demo.DEMO_HOST_EMAIL
    finally:
        kommo.stop()
        zoom.stop()


def test_run_emulators_reports_a_busy_port():
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0)
    try:
        busy = int(kommo.url.rsplit(":", 1)[1])
        with pytest.raises(CommandError, match=f"port {busy}"):
            start_emulators(kommo_port=busy, zoom_port=0)
    finally:
        kommo.stop()
        zoom.stop()


def test_run_emulators_as_a_process_writes_a_sourceable_env_file(tmp_path):
    env_file = tmp_path / "sandbox.env"
    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    command = [sys.executable, "manage.py", "run_emulators", "--kommo-port", "0", "--zoom-port", "0"]
    command += ["--env-file", str(env_file)]
    process = subprocess.Popen(command, cwd=root, env=environment, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not env_file.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        lines = [line for line in env_file.read_text().splitlines() if not line.startswith("#")]
        settings = dict(line.split("=", 1) for line in lines)
        assert settings["CALSYNC_SANDBOX"] == "true" and settings["ZOOM_API_URL"].endswith("/v2")
        response = requests.get(
            f"{settings['KOMMO_BASE_URL']}/api/v4/leads/{demo.DEMO_OPEN_DEAL_ID}",
            headers={"Authorization": f"Bearer {settings['KOMMO_ACCESS_TOKEN']}"},
            timeout=5,
        )
        assert response.json()["name"] == "ClientCo — 25 seats"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()


@pytest.mark.parametrize(
    "real",
    [
        {"KOMMO_BASE_URL": "https://acme.kommo.com", "KOMMO_ACCESS_TOKEN": "a-long-lived-token"},
        {"ZOOM_ACCOUNT_ID": "acc", "ZOOM_CLIENT_ID": "cid", "ZOOM_API_URL": "https://api.zoom.us/v2"},
    ],
)
def test_send_test_booking_refuses_a_production_configuration(webhook_url, settings, capsys, real):
    """Signed with the real key, sample bookings would become real Kommo leads and Zoom meetings."""
    for name, value in real.items():
        setattr(settings, name, value)
    with pytest.raises(CommandError, match=r"refusing to send test bookings.*--really"):
        call_command("send_test_booking", "--url", webhook_url)
    assert not WebhookEvent.objects.exists()


def test_send_test_booking_refuses_a_remote_webhook(settings):
    with pytest.raises(CommandError, match=r"the webhook at https://calsync\.example\.com"):
        call_command("send_test_booking", "--url", "https://calsync.example.com/webhooks/calendly/")


def test_send_test_booking_sends_to_the_emulators_and_with_really(webhook_url, settings, capsys):
    settings.KOMMO_BASE_URL, settings.KOMMO_ACCESS_TOKEN = "http://127.0.0.1:9/", "token"
    settings.ZOOM_ACCOUNT_ID, settings.ZOOM_CLIENT_ID = "acc", "cid"
    settings.ZOOM_API_URL, settings.ZOOM_OAUTH_URL = "http://127.0.0.1:9/v2", "http://localhost:9/oauth/token"
    call_command("send_test_booking", "--url", webhook_url)
    assert WebhookEvent.objects.count() == 1

    settings.KOMMO_BASE_URL = "https://acme.kommo.com"
    call_command("send_test_booking", "--url", webhook_url, "--really")
    assert WebhookEvent.objects.count() == 2
