"""The sandbox survives a restart: the emulators keep their data in a state file and never hand out an id twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.cache import cache
from django.core.management import CommandError

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import WebhookEvent
from conferencing.models import ZoomMeeting
from sandbox import calendly_sender as cs
from sandbox import demo
from sandbox.management.commands.run_emulators import start_emulators
from sandbox.zoom_emulator import ZoomEmulator
from tests.sandbox.conftest import zoom_token

ROOT = Path(__file__).resolve().parents[2]
KOMMO_AUTH = {"Authorization": f"Bearer {demo.KOMMO_TOKEN}"}
NOTE = [{"note_type": "common", "params": {"text": "Meeting booked"}}]


def write_things(kommo_url: str, zoom: ZoomEmulator | str) -> tuple[int, int, int]:
    """A note, a task and a Zoom meeting made through the APIs; their ids."""
    zoom_url = zoom if isinstance(zoom, str) else zoom.url
    lead = demo.DEMO_OPEN_DEAL_ID
    note = requests.post(f"{kommo_url}/api/v4/leads/{lead}/notes", json=NOTE, headers=KOMMO_AUTH, timeout=5)
    task_body = [{"text": "Meeting", "complete_till": 1_900_000_000, "entity_type": "leads", "entity_id": lead}]
    task = requests.post(f"{kommo_url}/api/v4/tasks", json=task_body, headers=KOMMO_AUTH, timeout=5)
    token = requests.post(
        f"{zoom_url}/oauth/token",
        auth=(demo.ZOOM_CLIENT_ID, demo.ZOOM_CLIENT_SECRET),
        data={"grant_type": "account_credentials", "account_id": demo.ZOOM_ACCOUNT_ID},
        timeout=5,
    ).json()["access_token"]
    meeting = requests.post(
        f"{zoom_url}/v2/users/{demo.DEMO_HOST_EMAIL}/meetings",
        json={"topic": "Demo", "start_time": "2026-12-01T15:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    return (
        note.json()["_embedded"]["notes"][0]["id"],
        task.json()["_embedded"]["tasks"][0]["id"],
        meeting.json()["id"],
    )


def test_a_restart_with_a_state_file_keeps_the_data_and_hands_out_new_ids(tmp_path):
    state_file = tmp_path / "var" / "emulators.json"
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0, state_file=state_file)
    try:
        first = write_things(kommo.url, zoom)
    finally:
        kommo.stop()
        zoom.stop()
    assert json.loads(state_file.read_text())["format"] == 1
    assert not list(state_file.parent.glob("*.partial"))  # written through a temporary file, then renamed

    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0, state_file=state_file)
    try:
        assert first[0] in {n["id"] for n in kommo.state()["notes"]}
        assert first[1] in {t["id"] for t in kommo.state()["tasks"]}
        assert first[2] in {m["id"] for m in zoom.state()["meetings"]}
        second = write_things(kommo.url, zoom)
    finally:
        kommo.stop()
        zoom.stop()
    assert set(first).isdisjoint(second)


def test_without_a_state_file_the_ids_would_repeat():
    """Why the file is needed: the id generators are seeded, so a fresh start hands out the same ids."""
    ids = []
    for _ in range(2):
        kommo, zoom = start_emulators(kommo_port=0, zoom_port=0)
        try:
            ids.append(write_things(kommo.url, zoom))
        finally:
            kommo.stop()
            zoom.stop()
    assert ids[0] == ids[1]


def test_a_reset_keeps_the_id_generators_past_every_id_handed_out():
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0)
    try:
        first = write_things(kommo.url, zoom)
        kommo.reset()
        zoom.reset()
        assert kommo.state()["notes"] == [] and zoom.state()["meetings"] == []
        assert set(first).isdisjoint(write_things(kommo.url, zoom))
    finally:
        kommo.stop()
        zoom.stop()


def test_a_broken_state_file_is_a_clear_error(tmp_path):
    state_file = tmp_path / "emulators.json"
    state_file.write_text("{not json")
    with pytest.raises(CommandError, match="Move it away"):
        start_emulators(kommo_port=0, zoom_port=0, state_file=state_file)


def run_emulators_process(state_file: Path, env_file: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    env_file.unlink(missing_ok=True)
    command = [sys.executable, "manage.py", "run_emulators", "--kommo-port", "0", "--zoom-port", "0"]
    command += ["--env-file", str(env_file), "--state-file", str(state_file)]
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not env_file.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)  # a separate process on the real clock: wait for it to listen
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("#")]
    return process, dict(line.split("=", 1) for line in lines)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_run_emulators_processes_keep_their_data_across_a_restart(tmp_path):
    state_file, env_file = tmp_path / "emulators.json", tmp_path / "sandbox.env"
    process, env = run_emulators_process(state_file, env_file)
    try:
        first = write_things(env["KOMMO_BASE_URL"], env["ZOOM_OAUTH_URL"].removesuffix("/oauth/token"))
    finally:
        stop(process)
    process, env = run_emulators_process(state_file, env_file)
    try:
        kommo_state = requests.get(f"{env['KOMMO_BASE_URL']}/__emulator__/state", timeout=5).json()
        assert first[0] in {n["id"] for n in kommo_state["notes"]}
        second = write_things(env["KOMMO_BASE_URL"], env["ZOOM_OAUTH_URL"].removesuffix("/oauth/token"))
    finally:
        stop(process)
    assert set(first).isdisjoint(second)


@pytest.fixture
def zoom_sync(settings):
    settings.ZOOM_ACCOUNT_ID = demo.ZOOM_ACCOUNT_ID
    settings.ZOOM_CLIENT_ID = demo.ZOOM_CLIENT_ID
    settings.ZOOM_CLIENT_SECRET = demo.ZOOM_CLIENT_SECRET
    settings.ZOOM_DEFAULT_USER = demo.DEMO_HOST_EMAIL
    settings.ZOOM_EVENT_TYPES = []
    settings.CALSYNC_RECONCILERS = ["conferencing.sync.reconcile"]
    cache.clear()
    yield settings
    cache.clear()


def book_and_sync(settings, zoom_url: str, *, start_hour: int) -> WebhookEvent:
    settings.ZOOM_API_URL, settings.ZOOM_OAUTH_URL = f"{zoom_url}/v2", f"{zoom_url}/oauth/token"
    booking = cs.booking(start=cs.datetime(2026, 12, 1, start_hour, tzinfo=cs.UTC))
    event = WebhookEvent.objects.get(pk=store_delivery(cs.encode(cs.created(booking))).event.pk)
    processing.process_event(event.pk)
    event.refresh_from_db()
    return event


@pytest.mark.django_db
def test_calsync_records_a_new_zoom_meeting_after_the_emulators_restart(zoom_sync, tmp_path):
    """The failure a restart caused: the second booking's meeting got the first one's id (unique constraint)."""
    state_file = tmp_path / "emulators.json"
    for hour in (10, 11):
        kommo, zoom = start_emulators(kommo_port=0, zoom_port=0, state_file=state_file)
        try:
            event = book_and_sync(zoom_sync, zoom.url, start_hour=hour)
        finally:
            kommo.stop()
            zoom.stop()
        assert event.status == WebhookEvent.Status.DONE, event.last_error
    meetings = ZoomMeeting.objects.all()
    assert [m.status for m in meetings] == [ZoomMeeting.Status.LIVE] * 2
    assert len({m.meeting_id for m in meetings}) == 2


def test_the_state_file_restores_zoom_tokens_so_calsyncs_cached_token_still_works(tmp_path):
    state_file = tmp_path / "emulators.json"
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0, state_file=state_file)
    try:
        token = zoom_token(zoom)
    finally:
        kommo.stop()
        zoom.stop()
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0, state_file=state_file)
    try:
        me = requests.get(f"{zoom.url}/v2/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert me.status_code == 200
    finally:
        kommo.stop()
        zoom.stop()


def test_a_newer_demo_seed_adds_what_the_saved_state_lacks(tmp_path):
    state_file = tmp_path / "emulators.json"
    older = demo.kommo_seed()
    older["contacts"] = [c for c in older["contacts"] if c["emails"] != [demo.SEVERAL_DEALS_EMAIL]]
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0, kommo_seed=older, state_file=state_file)
    kommo.stop()
    zoom.stop()
    kommo, zoom = start_emulators(kommo_port=0, zoom_port=0, state_file=state_file)
    try:
        emails = {f["values"][0]["value"] for c in kommo.state()["contacts"] for f in c["custom_fields_values"] or []}
        assert demo.SEVERAL_DEALS_EMAIL in emails
    finally:
        kommo.stop()
        zoom.stop()
