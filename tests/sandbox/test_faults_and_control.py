"""Fault injection, the private control API, loopback-only serving and the command-line entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox.emulator import Request
from sandbox.faults import FaultConfigError, FaultPlan
from sandbox.kommo_emulator import KommoEmulator
from sandbox.zoom_emulator import ZoomEmulator
from tests.sandbox.conftest import KOMMO_SEED, KOMMO_TOKEN, get

TASK = [{"task_type_id": 2, "text": "Meeting", "complete_till": 1795100000, "entity_id": 100, "entity_type": "leads"}]


def test_a_queue_is_consumed_in_order_and_only_by_matching_requests():
    plan = FaultPlan()
    plan.configure([{"method": "POST", "path": "/api/v4/tasks", "queue": ["error_before", None, "applied_but_lost"]}])
    assert plan.decide("GET", "/api/v4/tasks").kind is None  # another method: not consumed
    assert [plan.decide("POST", "/api/v4/tasks").kind for _ in range(4)] == [
        "error_before",
        None,
        "applied_but_lost",
        None,
    ]


def test_random_faults_are_reproducible_for_a_seed():
    def draws(seed: int) -> list[str | None]:
        plan = FaultPlan(seed=seed)
        plan.configure([{"path": "/v2/*", "fault": ["error_before", "applied_but_lost"], "probability": 0.3}])
        return [plan.decide("POST", "/v2/users/me/meetings").kind for _ in range(200)]

    first = draws(42)
    assert first == draws(42) and first != draws(43)
    assert 40 < sum(kind is not None for kind in first) < 80
    assert {"error_before", "applied_but_lost"} <= set(first)


def test_delays_add_up_and_the_first_other_fault_wins():
    plan = FaultPlan()
    plan.configure(
        [
            {"fault": "delay_ms", "delay_ms": 50},
            {"path": "/api/*", "fault": "delay", "delay_ms": 20},
            {"path": "/api/*", "fault": "rate_limit"},
            {"fault": "error_before", "status": 503},
        ]
    )
    decision = plan.decide("GET", "/api/v4/leads")
    assert (decision.delay_ms, decision.kind) == (70, "rate_limit")


@pytest.mark.parametrize(
    "rule",
    [{"fault": "explode"}, {"path": "/x"}, {"fault": "delay"}, {"fault": "error_before", "probability": 2}, {"q": 1}],
)
def test_bad_rules_are_refused(rule):
    with pytest.raises(FaultConfigError):
        FaultPlan().configure([rule])


def test_error_before_answers_500_and_applies_nothing(kommo, kapi):
    kommo.set_faults([{"method": "POST", "path": "/api/v4/tasks", "queue": ["error_before"]}])
    response = kapi.post(f"{kommo.url}/api/v4/tasks", json=TASK)
    assert response.status_code == 500 and response.json()["title"] == "ErrInternalServer"
    assert kommo.state()["tasks"] == []
    assert kapi.post(f"{kommo.url}/api/v4/tasks", json=TASK).status_code == 200  # the queue is spent


def test_applied_but_lost_applies_the_write_then_drops_the_connection(kommo, kapi):
    kommo.set_faults([{"method": "POST", "path": "/api/v4/tasks", "queue": ["applied_but_lost"]}])
    assert kapi.get(f"{kommo.url}/api/v4/leads/100").ok  # a kept-alive connection: no silent retry of the POST
    with pytest.raises(requests.ConnectionError):
        kapi.post(f"{kommo.url}/api/v4/tasks", json=TASK)
    state = kommo.state()
    assert [t["text"] for t in state["tasks"]] == ["Meeting"]  # the write happened: a retry would duplicate it
    assert state["requests"]["faults_injected"] == {"applied_but_lost": 1}
    assert kapi.get(f"{kommo.url}/api/v4/tasks").status_code == 200  # the session recovers on a new connection


def test_applied_but_lost_on_zoom_create_leaves_a_meeting_behind(zoom, zapi):
    zoom.set_faults([{"method": "POST", "path": "/v2/users/*/meetings", "queue": ["applied_but_lost"]}])
    with pytest.raises(requests.ConnectionError):
        zapi.post(f"{zoom.url}/v2/users/HOST1/meetings", json={"topic": "x", "agenda": "calsync:1"})
    [meeting] = zoom.state()["meetings"]
    listed = zapi.get(f"{zoom.url}/v2/users/HOST1/meetings").json()["meetings"]  # how a client finds it again
    assert [m["id"] for m in listed] == [meeting["id"]]


def test_rate_limit_fault_forces_each_apis_own_429(kommo, kapi, zoom, zapi):
    kommo.set_faults([{"fault": "rate_limit"}])
    assert kapi.get(f"{kommo.url}/api/v4/leads/100").json()["retry_after"] == 1
    zoom.set_faults([{"fault": "rate_limit"}])
    assert zapi.get(f"{zoom.url}/v2/users/me").json()["code"] == 429


def test_delay_uses_the_injected_sleeper(kommo, kapi, clock):
    kommo.set_faults([{"fault": "delay", "delay_ms": 50}])
    kapi.get(f"{kommo.url}/api/v4/leads/100")
    assert clock.slept == [0.05]


def test_the_control_api_over_http(kommo, kapi):
    control = f"{kommo.url}/__emulator__"
    rules = {"seed": 3, "rules": [{"method": "POST", "path": "/api/v4/leads/*/notes", "queue": ["error_before"]}]}
    assert requests.post(f"{control}/faults", json=rules, timeout=5).json()["seed"] == 3
    assert requests.post(f"{control}/faults", json={"rules": [{"fault": "nope"}]}, timeout=5).status_code == 400
    note = [{"note_type": "common", "params": {"text": "x"}}]
    assert kapi.post(f"{kommo.url}/api/v4/leads/100/notes", json=note).status_code == 500
    assert kapi.post(f"{kommo.url}/api/v4/leads/100/notes", json=note).status_code == 200
    kapi.get(f"{kommo.url}/api/v4/contacts", params={"query": "nobody"})

    state = get(f"{control}/state", params={"log": 1}).json()
    assert state["emulator"] == "kommo" and len(state["notes"]) == 1
    requests_part = state["requests"]
    assert requests_part["by_route"] == {"POST /api/v4/leads/{lead_id}/notes": 2, "GET /api/v4/contacts": 1}
    assert requests_part["by_status"] == {"200": 1, "204": 1, "500": 1}
    assert requests_part["by_route_status"]["POST /api/v4/leads/{lead_id}/notes"] == {"500": 1, "200": 1}
    assert [entry["status"] for entry in requests_part["log"]] == [500, 200, 204]

    assert requests.post(f"{control}/config", json={"rps": 3}, timeout=5).json()["rps"] == 3
    assert requests.post(f"{control}/config", json={"nope": 1}, timeout=5).status_code == 400
    assert requests.post(f"{control}/reset", timeout=5).ok
    after = get(f"{control}/state").json()
    assert after["notes"] == [] and after["requests"]["total"] == 0 and len(after["contacts"]) == 4
    assert get(f"{control}/config").json()["rps"] == 0  # back to the constructor's settings

    seed = {"contacts": [{"id": 9, "name": "Only one", "emails": ["one@x.example"]}], "tokens": [KOMMO_TOKEN]}
    assert requests.post(f"{control}/seed", json=seed, timeout=5).ok
    assert [c["id"] for c in get(f"{control}/state").json()["contacts"]] == [9]
    assert get(f"{control}/nothing").status_code == 404


def test_clock_can_be_advanced_over_http_for_separate_processes(zoom, zapi):
    requests.post(f"{zoom.url}/__emulator__/clock", json={"advance": 3600}, timeout=5)
    assert zapi.get(f"{zoom.url}/v2/users/me").json()["code"] == 124


def test_only_loopback_clients_and_addresses():
    emulator = KommoEmulator(seed=KOMMO_SEED)
    outsider = Request("GET", "/api/v4/leads", {}, {"Authorization": f"Bearer {KOMMO_TOKEN}"}, b"", "10.1.2.3")
    assert emulator.handle(outsider).status == 403
    with pytest.raises(ValueError, match="loopback"):
        ZoomEmulator(host="0.0.0.0")


def test_command_line_starts_a_separate_process_and_prints_its_url(tmp_path: Path):
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(KOMMO_SEED))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.kommo_emulator",
            "--port",
            "0",
            "--seed-file",
            str(seed_file),
            "--set",
            "rps=0",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = get(
            f"{url}/api/v4/contacts", params={"query": "ann@x"}, headers={"Authorization": f"Bearer {KOMMO_TOKEN}"}
        )
        assert response.status_code == 200
        assert get(f"{url}/__emulator__/config").json()["rps"] == 0
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()


def test_a_person_deletes_or_edits_a_task_in_kommo(kommo, kapi):
    task_id = kapi.post(f"{kommo.url}/api/v4/tasks", json=TASK).json()["_embedded"]["tasks"][0]["id"]
    control = f"{kommo.url}/__emulator__"
    edit = {"id": task_id, "complete_till": 1795200000, "is_completed": True}
    assert requests.post(f"{control}/edit_task", json=edit, timeout=5).ok
    task = kapi.get(f"{kommo.url}/api/v4/tasks/{task_id}").json()
    assert (task["complete_till"], task["is_completed"]) == (1795200000, True)
    assert requests.post(f"{control}/delete_task", json={"id": task_id}, timeout=5).ok
    assert kapi.get(f"{kommo.url}/api/v4/tasks", params={"filter[id][]": task_id}).status_code == 204
    assert requests.post(f"{control}/delete_task", json={"id": task_id}, timeout=5).status_code == 404


def test_a_host_deletes_a_meeting_in_zoom(zoom):
    from tests.sandbox.conftest import zoom_token

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {zoom_token(zoom)}"
    body = {"topic": "Demo", "type": 2, "start_time": "2030-01-01T10:00:00Z", "duration": 30}
    meeting = api.post(f"{zoom.url}/v2/users/me/meetings", json=body, timeout=5).json()
    control = f"{zoom.url}/__emulator__"
    assert requests.post(f"{control}/delete_meeting", json={"id": meeting["id"]}, timeout=5).ok
    gone = api.get(f"{zoom.url}/v2/meetings/{meeting['id']}", timeout=5)
    assert (gone.status_code, gone.json()["code"]) == (404, 3001)
    assert requests.post(f"{control}/delete_meeting", json={"id": meeting["id"]}, timeout=5).status_code == 404
