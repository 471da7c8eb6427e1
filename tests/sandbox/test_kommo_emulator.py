"""The Kommo emulator behaves as Kommo's API reference describes, driven over real HTTP with plain requests."""

from __future__ import annotations

import pytest
import requests

from sandbox.kommo_emulator import KommoEmulator
from tests.sandbox.conftest import KOMMO_SEED, KOMMO_TOKEN, FakeClock, get

AUTH = {"Authorization": f"Bearer {KOMMO_TOKEN}"}


def emails(contact: dict) -> list[str]:
    return [
        value["value"]
        for field in contact["custom_fields_values"] or []
        if field["field_code"] == "EMAIL"
        for value in field["values"]
    ]


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {KOMMO_TOKEN}"])
def test_missing_or_wrong_token_is_401_problem_json(kommo, header):
    response = get(f"{kommo.url}/api/v4/contacts", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 401 and response.json()["title"] == "Unauthorized"


def test_empty_search_is_204_with_no_body(kommo, kapi):
    response = kapi.get(f"{kommo.url}/api/v4/contacts", params={"query": "nobody@nowhere.example", "with": "leads"})
    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize(
    "path",
    ["/api/v4/leads/999", "/api/v4/contacts/999", "/api/v4/tasks/999", "/api/v4/leads/100/notes", "/api/v4/tasks"],
)
def test_missing_entities_and_empty_lists_are_204(kommo, kapi, path):
    response = kapi.get(kommo.url + path)
    assert (response.status_code, response.content) == (204, b"")


def test_query_is_a_fuzzy_case_insensitive_search_over_every_field(kommo, kapi):
    response = kapi.get(f"{kommo.url}/api/v4/contacts", params={"query": "ANN@x.example", "with": "leads"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/hal+json"
    found = {c["id"]: c for c in response.json()["_embedded"]["contacts"]}
    # 1 has the address, 2 has joann@x (a substring match), 3 only mentions it in a comment field.
    assert set(found) == {1, 2, 3}
    assert [c for c in found.values() if "ann@x.example" in [e.lower() for e in emails(c)]] == [found[1]]
    email_field = next(f for f in found[1]["custom_fields_values"] if f["field_code"] == "EMAIL")
    assert email_field["field_type"] == "multitext" and email_field["values"][0]["enum_code"] == "WORK"


def test_with_leads_embeds_lead_ids_only(kommo, kapi):
    body = kapi.get(f"{kommo.url}/api/v4/contacts", params={"query": "ann@x.example", "with": "leads"}).json()
    ann = next(c for c in body["_embedded"]["contacts"] if c["id"] == 1)
    assert [lead["id"] for lead in ann["_embedded"]["leads"]] == [100, 101, 102]
    assert set(ann["_embedded"]["leads"][0]) == {"id", "_links"}
    without = kapi.get(f"{kommo.url}/api/v4/contacts", params={"query": "ann@x.example"}).json()
    assert "leads" not in without["_embedded"]["contacts"][0]["_embedded"]


def test_leads_by_id_filter_with_won_and_lost_statuses(kommo, kapi):
    response = kapi.get(f"{kommo.url}/api/v4/leads", params={"filter[id][]": [100, 101, 102], "with": "contacts"})
    leads = {lead["id"]: lead for lead in response.json()["_embedded"]["leads"]}
    assert {i: lead["status_id"] for i, lead in leads.items()} == {100: 49366085, 101: 142, 102: 143}
    assert leads[100]["pipeline_id"] == 5597036 and leads[101]["closed_at"] is not None
    assert [(c["id"], c["is_main"]) for c in leads[100]["_embedded"]["contacts"]] == [(1, True)]
    assert kapi.get(f"{kommo.url}/api/v4/leads/103").json()["name"] == "Other open deal"
    assert kapi.get(f"{kommo.url}/api/v4/leads", params={"filter[id][]": [555]}).status_code == 204


def test_pagination_follows_next_links_and_204_past_the_end(kommo, kapi):
    first = kapi.get(f"{kommo.url}/api/v4/contacts", params={"limit": 3}).json()
    assert first["_page"] == 1 and len(first["_embedded"]["contacts"]) == 3
    second = kapi.get(first["_links"]["next"]["href"]).json()
    assert second["_page"] == 2 and [c["id"] for c in second["_embedded"]["contacts"]] == [4]
    assert "next" not in second["_links"]
    assert kapi.get(f"{kommo.url}/api/v4/contacts", params={"limit": 3, "page": 3}).status_code == 204
    too_many = kapi.get(f"{kommo.url}/api/v4/contacts", params={"limit": 251})
    assert too_many.status_code == 422 and too_many.json()["detail"] == "Limit 250 per page"


def test_notes_are_added_and_listed_per_lead_and_per_entity_type(kommo, kapi):
    note = [{"note_type": "common", "params": {"text": "Calendly: booked"}, "request_id": "calendly-1"}]
    response = kapi.post(f"{kommo.url}/api/v4/leads/100/notes", json=note)
    assert response.status_code == 200
    created = response.json()["_embedded"]["notes"][0]
    assert (created["entity_id"], created["request_id"]) == (100, "calendly-1")
    response = kapi.post(f"{kommo.url}/api/v4/leads/notes", json=[{"entity_id": 103, **note[0], "request_id": None}])
    assert response.json()["_embedded"]["notes"][0]["entity_id"] == 103
    listed = kapi.get(f"{kommo.url}/api/v4/leads/100/notes").json()["_embedded"]["notes"]
    assert [(n["id"], n["params"]["text"]) for n in listed] == [(created["id"], "Calendly: booked")]
    by_type = kapi.get(f"{kommo.url}/api/v4/leads/notes", params={"filter[entity_id][]": [103]}).json()
    assert [n["entity_id"] for n in by_type["_embedded"]["notes"]] == [103]
    assert [n["entity_id"] for n in kommo.state()["notes"]] == [100, 103]


def test_validation_errors_have_kommos_shape_and_apply_nothing(kommo, kapi):
    good = {"task_type_id": 2, "text": "Meeting", "complete_till": 1795100000, "entity_id": 100, "entity_type": "leads"}
    response = kapi.post(f"{kommo.url}/api/v4/tasks", json=[good, {"text": "", "request_id": "b"}])
    assert response.status_code == 400
    body = response.json()
    assert {k: body[k] for k in ("title", "type", "status", "detail")} == {
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed",
    }
    [error] = body["validation-errors"]
    assert error["request_id"] == "b"
    assert {e["path"] for e in error["errors"]} == {"text", "complete_till"}
    assert set(error["errors"][0]) == {"code", "path", "detail"}
    assert kommo.state()["tasks"] == []
    empty = kapi.post(f"{kommo.url}/api/v4/tasks", json=[])
    assert (empty.status_code, empty.json()["detail"]) == (400, "Request data can not be empty")
    note = kapi.post(f"{kommo.url}/api/v4/leads/999/notes", json=[{"note_type": "common", "params": {"text": "x"}}])
    assert note.json()["validation-errors"][0]["errors"][0]["path"] == "entity_id"


def test_tasks_add_list_filter_and_complete(kommo, kapi):
    meeting = {"task_type_id": 2, "text": "Meeting", "complete_till": 1795100000, "entity_id": 100}
    meeting["entity_type"] = "leads"
    follow_up = {**meeting, "task_type_id": 1, "text": "Call back", "entity_id": 103}
    response = kapi.post(f"{kommo.url}/api/v4/tasks", json=[meeting, follow_up])
    ids = [t["id"] for t in response.json()["_embedded"]["tasks"]]
    assert [t["request_id"] for t in response.json()["_embedded"]["tasks"]] == ["0", "1"]

    params = {"filter[entity_type]": "leads", "filter[entity_id][]": [100], "filter[task_type][]": [2]}
    listed = kapi.get(f"{kommo.url}/api/v4/tasks", params={**params, "filter[is_completed]": 0}).json()
    [task] = listed["_embedded"]["tasks"]
    assert (task["id"], task["responsible_user_id"], task["is_completed"]) == (ids[0], 504141, False)
    assert task["result"] == []  # Kommo's PHP backend: an empty result is a list
    assert kapi.get(f"{kommo.url}/api/v4/tasks", params={"filter[entity_id][]": [100]}).status_code == 400

    no_result = kapi.patch(f"{kommo.url}/api/v4/tasks/{ids[0]}", json={"is_completed": True})
    assert no_result.status_code == 400  # "To complete a task, properties result and is_completed should be passed"
    complete = {"is_completed": True, "result": {"text": "Cancelled"}}
    done = kapi.patch(f"{kommo.url}/api/v4/tasks/{ids[0]}", json=complete)
    assert done.status_code == 200 and set(done.json()) == {"id", "updated_at", "_links"}
    assert kapi.get(f"{kommo.url}/api/v4/tasks", params={**params, "filter[is_completed]": 0}).status_code == 204

    batch = kapi.patch(f"{kommo.url}/api/v4/tasks", json=[{"id": ids[1], "text": "Moved", "complete_till": 1795200000}])
    assert batch.json()["_embedded"]["tasks"][0]["id"] == ids[1]
    state = {t["id"]: t for t in kommo.state()["tasks"]}
    assert state[ids[0]]["result"] == {"text": "Cancelled"} and state[ids[1]]["text"] == "Moved"
    assert kapi.patch(f"{kommo.url}/api/v4/tasks/424242", json={"text": "x"}).status_code == 404


def test_users_need_an_admin_token(kommo, kapi):
    users = kapi.get(f"{kommo.url}/api/v4/users").json()["_embedded"]["users"]
    marta = users[0]
    assert (marta["id"], marta["email"], marta["rights"]["is_admin"]) == (504141, "marta.ruiz@acme-sales.example", True)
    member = get(f"{kommo.url}/api/v4/users", headers={"Authorization": "Bearer member-token"})
    assert (member.status_code, member.json()["detail"]) == (403, "Insufficient rights")


def test_incoming_lead_contacts_stay_hidden_from_search_until_accepted(kommo, kapi):
    email = {"value": "new@lead.example", "enum_code": "WORK"}
    item = {
        "source_name": "Calendly",
        "source_uid": "calsync",
        "metadata": {"form_id": "calendly", "form_name": "Calendly booking"},
        "_embedded": {
            "leads": [{"name": "Calendly: new@lead.example"}],
            "contacts": [{"name": "New Lead", "custom_fields_values": [{"field_code": "EMAIL", "values": [email]}]}],
        },
    }
    response = kapi.post(f"{kommo.url}/api/v4/leads/unsorted/forms", json=[item])
    assert response.status_code == 200
    [unsorted] = response.json()["_embedded"]["unsorted"]
    lead_id = unsorted["_embedded"]["leads"][0]["id"]
    assert kapi.get(f"{kommo.url}/api/v4/leads/{lead_id}").json()["status_id"] == 49366080  # Incoming leads
    assert kapi.get(f"{kommo.url}/api/v4/contacts", params={"query": "new@lead.example"}).status_code == 204
    kapi.post(f"{kommo.url}/api/v4/leads/unsorted/{unsorted['uid']}/accept")
    assert kapi.get(f"{kommo.url}/api/v4/contacts", params={"query": "new@lead.example"}).status_code == 200
    missing = kapi.post(f"{kommo.url}/api/v4/leads/unsorted/forms", json=[{"source_name": "Calendly"}])
    assert missing.json()["validation-errors"][0]["errors"][0]["path"] == "source_uid"


def test_over_seven_requests_a_second_is_429_with_retry_after_in_the_body():
    clock = FakeClock()
    with KommoEmulator.running(seed=KOMMO_SEED, clock=clock) as kommo:
        answers = [get(f"{kommo.url}/api/v4/leads/100", headers=AUTH).status_code for _ in range(8)]
        assert answers == [200] * 7 + [429]
        limited = get(f"{kommo.url}/api/v4/leads/100", headers=AUTH)
        assert limited.json() == {
            "title": "Too Many Requests",
            "type": "https://httpstatus.es/429",
            "status": 429,
            "detail": "You have sent too many requests in a given amount of time",
            "retry_after": 1,
        }
        clock.advance(1.0)
        assert get(f"{kommo.url}/api/v4/leads/100", headers=AUTH).status_code == 200
        assert kommo.state()["requests"]["rate_limited"] == 2


def test_repeated_429s_get_the_ip_blocked_with_an_html_403():
    clock = FakeClock()
    with KommoEmulator.running(seed=KOMMO_SEED, clock=clock, rps=1, block_after=2, block_seconds=60) as kommo:
        codes = [get(f"{kommo.url}/api/v4/leads/100", headers=AUTH).status_code for _ in range(4)]
        assert codes == [200, 429, 429, 403]
        blocked = get(f"{kommo.url}/api/v4/users", headers=AUTH)
        assert blocked.status_code == 403 and blocked.headers["Content-Type"] == "text/html"
        with pytest.raises(requests.JSONDecodeError):
            blocked.json()
        assert kommo.state()["blocked"] is True
        clock.advance(61)
        assert get(f"{kommo.url}/api/v4/leads/100", headers=AUTH).status_code == 200


def test_unpaid_account_answers_402(kommo, kapi):
    kommo.configure(payment_required=True)
    response = kapi.get(f"{kommo.url}/api/v4/leads/100")
    assert (response.status_code, response.json()["detail"]) == (402, "Payment required")


def test_unknown_paths_and_methods(kommo, kapi):
    assert kapi.get(f"{kommo.url}/api/v4/companies").status_code == 404
    assert kapi.delete(f"{kommo.url}/api/v4/tasks/1").status_code == 405  # tasks cannot be deleted


def test_the_limit_is_a_sliding_window_not_a_calendar_second():
    """Kommo counts any second, wherever it starts: 7 requests late in one second and one early in the next
    are 8 within a second (429), though a per-calendar-second counter would let them through."""
    clock = FakeClock()
    with KommoEmulator.running(seed=KOMMO_SEED, clock=clock) as kommo:
        clock.advance(0.6)
        assert [get(f"{kommo.url}/api/v4/leads/100", headers=AUTH).status_code for _ in range(7)] == [200] * 7
        clock.advance(0.5)  # into the next calendar second, 0.5 s after the seven
        assert get(f"{kommo.url}/api/v4/leads/100", headers=AUTH).status_code == 429
        clock.advance(0.5)  # a full second after the seven
        assert get(f"{kommo.url}/api/v4/leads/100", headers=AUTH).status_code == 200
