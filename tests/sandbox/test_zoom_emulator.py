"""The Zoom emulator behaves as Zoom's Meeting API describes, driven over real HTTP with plain requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from calsync.http import parse_retry_after
from sandbox.zoom_emulator import ZoomEmulator
from tests.sandbox.conftest import NOW, FakeClock, zoom_token

MEETING = {"topic": "Demo", "type": 2, "start_time": "2026-12-02T15:00:00Z", "duration": 30, "agenda": "calsync:abc"}


def create(zapi, zoom, user="HOST1", **fields) -> requests.Response:
    return zapi.post(f"{zoom.url}/v2/users/{user}/meetings", json={**MEETING, **fields})


@pytest.mark.parametrize(
    ("auth", "form", "error"),
    [
        (
            ("sandbox-client", "wrong"),
            {"grant_type": "account_credentials", "account_id": "sandbox-account"},
            "invalid_client",
        ),
        (("sandbox-client", "sandbox-secret"), {"grant_type": "client_credentials"}, "unsupported_grant_type"),
        (
            ("sandbox-client", "sandbox-secret"),
            {"grant_type": "account_credentials", "account_id": "x"},
            "invalid_request",
        ),
        (("sandbox-client", "sandbox-secret"), {}, "invalid_request"),
    ],
)
def test_token_errors(zoom, auth, form, error):
    response = requests.post(f"{zoom.url}/oauth/token", auth=auth, data=form, timeout=5)
    assert (response.status_code, response.json()["error"]) == (400, error)


def test_token_wants_the_form_body_not_the_query_string(zoom):
    params = {"grant_type": "account_credentials", "account_id": "sandbox-account"}
    response = requests.post(
        f"{zoom.url}/oauth/token", auth=("sandbox-client", "sandbox-secret"), params=params, timeout=5
    )
    assert response.status_code == 400


def test_token_shape(zoom):
    response = requests.post(
        f"{zoom.url}/oauth/token",
        auth=("sandbox-client", "sandbox-secret"),
        data={"grant_type": "account_credentials", "account_id": "sandbox-account"},
        timeout=5,
    )
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599 and isinstance(body["scope"], str)
    assert body["api_url"] == zoom.url and "refresh_token" not in body
    assert zoom.state()["tokens_issued"] == 1


def test_unknown_and_expired_tokens_are_401_code_124(zoom, clock):
    bad = requests.get(f"{zoom.url}/v2/users/HOST1", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert (bad.status_code, bad.json()["code"]) == (401, 124)
    headers = {"Authorization": f"Bearer {zoom_token(zoom)}"}
    assert requests.get(f"{zoom.url}/v2/users/HOST1", headers=headers, timeout=5).status_code == 200
    clock.advance(3599)
    expired = requests.get(f"{zoom.url}/v2/users/HOST1", headers=headers, timeout=5)
    assert (expired.status_code, expired.json()["code"]) == (401, 124)
    older = zoom_token(zoom)  # a new token does not invalidate the other live ones
    newer = zoom_token(zoom)
    assert requests.get(f"{zoom.url}/v2/users/me", headers={"Authorization": f"Bearer {older}"}, timeout=5).ok
    requests.post(f"{zoom.url}/__emulator__/expire_tokens", timeout=5)
    gone = requests.get(f"{zoom.url}/v2/users/me", headers={"Authorization": f"Bearer {newer}"}, timeout=5)
    assert gone.json()["code"] == 124


def test_users_by_id_or_email_case_insensitively_and_1001_for_strangers(zoom, zapi):
    assert zapi.get(f"{zoom.url}/v2/users/HOST1").json()["email"] == "Marta.Ruiz@acme-sales.example"
    assert zapi.get(f"{zoom.url}/v2/users/marta.ruiz@ACME-sales.example").json()["id"] == "HOST1"
    unknown = zapi.get(f"{zoom.url}/v2/users/nobody@acme-sales.example")
    assert (unknown.status_code, unknown.json()["code"]) == (404, 1001)
    assert create(zapi, zoom, user="nobody@acme-sales.example").json()["code"] == 1001


def test_create_answers_201_with_an_11_digit_id_and_the_links(zoom, zapi):
    response = create(zapi, zoom, user="marta.ruiz@acme-sales.example")
    assert response.status_code == 201
    meeting = response.json()
    assert len(str(meeting["id"])) == 11 and meeting["id"] > 2**31
    assert f"/j/{meeting['id']}?pwd=" in meeting["join_url"]
    assert f"/s/{meeting['id']}?zak=" in meeting["start_url"]
    assert meeting["uuid"] and meeting["password"] and meeting["host_id"] == "HOST1"
    assert (meeting["start_time"], meeting["duration"], meeting["status"]) == ("2026-12-02T15:00:00Z", 30, "waiting")
    assert [m["id"] for m in zoom.state()["meetings"]] == [meeting["id"]]


def test_a_start_time_without_z_is_read_in_the_timezone_field(zoom, zapi):
    local = create(zapi, zoom, start_time="2026-12-02T15:00:00", timezone="Europe/Berlin").json()
    assert local["start_time"] == "2026-12-02T14:00:00Z"


def test_bad_bodies_are_400_code_300(zoom, zapi):
    not_json = zapi.post(
        f"{zoom.url}/v2/users/HOST1/meetings", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert (not_json.status_code, not_json.json()["code"]) == (400, 300)
    invalid = create(zapi, zoom, topic="x" * 201, start_time="tomorrow")
    assert invalid.json()["code"] == 300
    assert {e["field"] for e in invalid.json()["errors"]} == {"topic", "start_time"}


def test_patch_and_delete_answer_204_then_3001_once_gone(zoom, zapi):
    meeting_id = create(zapi, zoom).json()["id"]
    patched = zapi.patch(
        f"{zoom.url}/v2/meetings/{meeting_id}", json={"start_time": "2026-12-03T09:30:00Z", "duration": 45}
    )
    assert (patched.status_code, patched.content) == (204, b"")
    fetched = zapi.get(f"{zoom.url}/v2/meetings/{meeting_id}").json()
    assert (fetched["start_time"], fetched["duration"], fetched["topic"]) == ("2026-12-03T09:30:00Z", 45, "Demo")
    deleted = zapi.delete(f"{zoom.url}/v2/meetings/{meeting_id}", params={"schedule_for_reminder": "false"})
    assert (deleted.status_code, deleted.content) == (204, b"")
    for method in ("GET", "PATCH", "DELETE"):
        gone = zapi.request(method, f"{zoom.url}/v2/meetings/{meeting_id}", json={"duration": 10})
        assert (gone.status_code, gone.json()["code"]) == (404, 3001), method
    state = zoom.state()
    assert state["meetings"] == [] and [m["id"] for m in state["deleted_meetings"]] == [meeting_id]


def test_a_meeting_expires_30_days_after_its_date(zoom, zapi, clock):
    meeting_id = create(zapi, zoom, start_time="2026-11-20T10:00:00Z").json()["id"]
    clock.advance(33 * 86400)
    zapi.headers["Authorization"] = f"Bearer {zoom_token(zoom)}"
    assert zapi.get(f"{zoom.url}/v2/meetings/{meeting_id}").json()["code"] == 3001


def test_upcoming_list_pages_with_next_page_token_and_cuts_the_agenda(zoom, zapi):
    past = create(zapi, zoom, start_time="2026-11-01T10:00:00Z").json()["id"]  # before NOW (2026-11-18)
    ids = [
        create(zapi, zoom, start_time=f"2026-12-0{day}T10:00:00Z", agenda="calsync:x" + "y" * 400).json()["id"]
        for day in range(1, 6)
    ]
    seen, token, pages = [], "", 0
    while True:
        params = {"type": "upcoming", "page_size": 2, **({"next_page_token": token} if token else {})}
        page = zapi.get(f"{zoom.url}/v2/users/marta.ruiz@acme-sales.example/meetings", params=params).json()
        pages += 1
        assert page["total_records"] == 5 and page["page_size"] == 2
        seen += page["meetings"]
        token = page["next_page_token"]
        if not token:
            break
    assert pages == 3 and [m["id"] for m in seen] == ids and past not in [m["id"] for m in seen]
    assert all(len(m["agenda"]) == 250 and m["agenda"].startswith("calsync:x") for m in seen)
    assert "start_url" not in seen[0]
    scheduled = zapi.get(
        f"{zoom.url}/v2/users/HOST1/meetings", params={"from": "2026-11-01", "to": "2026-11-01"}
    ).json()
    assert [m["id"] for m in scheduled["meetings"]] == [past]
    bad = zapi.get(f"{zoom.url}/v2/users/HOST1/meetings", params={"next_page_token": "forged"})
    assert bad.status_code == 400


def test_per_second_limit_answers_429_qps():
    clock = FakeClock()
    with ZoomEmulator.running(clock=clock, medium_rps=2) as zoom:
        headers = {"Authorization": f"Bearer {zoom_token(zoom)}"}
        url = f"{zoom.url}/v2/users/me/meetings"
        codes = [requests.post(url, json=MEETING, headers=headers, timeout=5).status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        limited = requests.post(url, json=MEETING, headers=headers, timeout=5)
        assert limited.json()["code"] == 429 and "per-second" in limited.json()["message"]
        assert limited.headers["X-RateLimit-Type"] == "QPS" and "Retry-After" not in limited.headers
        assert requests.get(f"{zoom.url}/v2/users/me", headers=headers, timeout=5).ok  # Light is its own bucket
        clock.advance(1)
        assert requests.post(url, json=MEETING, headers=headers, timeout=5).status_code == 201
        assert zoom.state()["requests"]["rate_limited"] == 2


def test_daily_create_update_cap_per_host_answers_an_iso_retry_after():
    clock = FakeClock()
    with ZoomEmulator.running(clock=clock, daily_limit=2, medium_rps=0, light_rps=0) as zoom:
        headers = {"Authorization": f"Bearer {zoom_token(zoom)}"}
        url = f"{zoom.url}/v2/users/me/meetings"
        meeting_id = requests.post(url, json=MEETING, headers=headers, timeout=5).json()["id"]
        assert (
            requests.patch(
                f"{zoom.url}/v2/meetings/{meeting_id}", json={"duration": 40}, headers=headers, timeout=5
            ).status_code
            == 204
        )
        capped = requests.post(url, json=MEETING, headers=headers, timeout=5)
        assert capped.status_code == 429 and "daily rate limit (2)" in capped.json()["message"]
        assert (
            capped.headers["Retry-After"] == "2026-11-19T00:00:00Z"
            and capped.headers["X-RateLimit-Type"] == "Daily-limit"
        )
        now = datetime.fromtimestamp(NOW, UTC)
        assert 0 < parse_retry_after(capped.headers["Retry-After"], now=now) <= 86400
        assert requests.delete(f"{zoom.url}/v2/meetings/{meeting_id}", headers=headers, timeout=5).status_code == 204
        clock.advance(parse_retry_after(capped.headers["Retry-After"], now=now))  # a new UTC day
        headers = {"Authorization": f"Bearer {zoom_token(zoom)}"}
        assert requests.post(url, json=MEETING, headers=headers, timeout=5).status_code == 201
