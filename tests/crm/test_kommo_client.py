"""KommoClient at the wire level: 204, typed errors, what is retried and what is never re-sent."""

import logging

import pytest
import requests
from django.core.cache import cache
from responses import matchers

from crm.kommo import (
    KommoAuthError,
    KommoClient,
    KommoForbidden,
    KommoIPBlocked,
    KommoPaymentRequired,
    KommoRateLimited,
    KommoServerError,
    KommoUncertainWrite,
    KommoValidationError,
)
from tests.conftest import load_fixture
from tests.crm.conftest import BASE, TOKEN, contacts_body, kommo, leads_body

pytestmark = pytest.mark.django_db


class Limiter:
    def __init__(self):
        self.acquired = 0
        self.answers = 0
        self.paused: list[float] = []

    def acquire(self):
        self.acquired += 1
        return 0.0

    def answered(self):
        self.answers += 1

    def pause(self, seconds):
        self.paused.append(seconds)


@pytest.fixture
def limiter():
    return Limiter()


@pytest.fixture
def slept():
    return []


@pytest.fixture
def client(limiter, slept):
    return KommoClient(BASE, TOKEN, requests.Session(), limiter, slept.append, cache=cache)


def test_bearer_token_is_sent_and_every_call_takes_a_rate_limit_slot(rsps, client, limiter):
    rsps.get(
        f"{BASE}/api/v4/leads",
        json=leads_body(9785993),
        match=[matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})],
    )
    assert [lead["id"] for lead in client.get_leads([9785993])] == [9785993]
    assert limiter.acquired == 1
    assert "filter%5Bid%5D%5B%5D=9785993" in rsps.calls[0].request.url


def test_empty_search_is_204_without_body(rsps, client):
    rsps.get(f"{BASE}/api/v4/contacts", status=204)
    assert client.find_contacts_by_email("nobody@nowhere.example") == []


def test_missing_lead_by_id_is_204(rsps, client):
    rsps.get(f"{BASE}/api/v4/leads/404404", status=204)
    assert client.get_lead(404404) is None


def test_fuzzy_search_is_filtered_on_the_exact_email_field(rsps, client):
    rsps.get(
        f"{BASE}/api/v4/contacts",
        json=kommo("contacts_fuzzy.json"),
        match=[matchers.query_param_matcher({"query": "ann@clientco.example", "with": "leads", "limit": "50"})],
    )
    found = client.find_contacts_by_email("  Ann@ClientCo.example ")
    # not joann@, not the contact that mentions ann@ in "Referred by", not the one without fields
    assert [c["id"] for c in found] == [12117304]


def test_upper_case_email_in_kommo_matches(rsps, client):
    rsps.get(f"{BASE}/api/v4/contacts", json=contacts_body(9785993, email="LUCIA.FERNANDEZ@CLIENTCO.EXAMPLE"))
    assert [c["id"] for c in client.find_contacts_by_email("lucia.fernandez@clientco.example")] == [12117258]


def test_429_waits_retry_after_from_the_body_then_retries(rsps, client, limiter, slept):
    rsps.get(f"{BASE}/api/v4/leads", status=429, json=kommo("error_429.json"))
    rsps.get(f"{BASE}/api/v4/leads", json=leads_body(9785993))
    assert len(client.get_leads([9785993])) == 1
    assert slept == [2.0] and limiter.paused == [2.0]  # every process is held back, not only us
    assert len(rsps.calls) == 2


def test_429_on_a_write_is_retried_because_kommo_did_not_act(rsps, client, slept):
    rsps.post(f"{BASE}/api/v4/leads/9785993/notes", status=429, headers={"Retry-After": "1"}, body="")
    rsps.post(f"{BASE}/api/v4/leads/9785993/notes", json=kommo("note_created.json"))
    assert client.add_note(9785993, "hello") == 76787983
    assert slept == [1.0]


def test_long_429_is_left_to_the_pipeline_retry(rsps, client, slept):
    body = {**kommo("error_429.json"), "retry_after": 300}
    rsps.get(f"{BASE}/api/v4/leads", status=429, json=body)
    with pytest.raises(KommoRateLimited) as caught:
        client.get_leads([1])
    assert caught.value.retry_after == 300 and caught.value.retryable
    assert slept == []


def test_5xx_on_a_read_is_retried_with_backoff(rsps, client, slept):
    rsps.get(f"{BASE}/api/v4/leads", status=500, json=kommo("error_500.json"))
    rsps.get(f"{BASE}/api/v4/leads", body=requests.ReadTimeout("read timed out"))
    rsps.get(f"{BASE}/api/v4/leads", json=leads_body(9785993))
    assert len(client.get_leads([9785993])) == 1
    assert slept == [0.5, 2.0]


def test_5xx_on_a_read_gives_up_after_the_backoff(rsps, client, slept):
    for _ in range(4):
        rsps.get(f"{BASE}/api/v4/leads", status=503, body="")
    with pytest.raises(KommoServerError) as caught:
        client.get_leads([1])
    assert caught.value.retryable and len(rsps.calls) == 4


@pytest.mark.parametrize(
    "failure",
    [{"status": 500, "json": {"title": "ErrInternalServer", "status": 500}}, {"body": requests.ReadTimeout("t")}],
)
def test_a_post_is_never_resent_after_an_ambiguous_failure(rsps, client, limiter, failure):
    rsps.post(f"{BASE}/api/v4/tasks", **failure)
    with pytest.raises(KommoUncertainWrite):
        client.create_task(9785993, text="x", complete_till=1, duration=60)
    assert len(rsps.calls) == 1
    assert limiter.answers == limiter.acquired == 1  # a failed request settles its slot too


def test_every_slot_is_settled_when_its_answer_comes(rsps, client, limiter):
    rsps.get(f"{BASE}/api/v4/leads", status=503)
    rsps.get(f"{BASE}/api/v4/leads", json=leads_body(9785993))
    client.get_leads([9785993])
    assert limiter.answers == limiter.acquired == 2


def test_a_post_whose_connection_never_opened_is_retried(rsps, client):
    rsps.post(f"{BASE}/api/v4/tasks", body=requests.ConnectTimeout("connect timeout"))
    rsps.post(f"{BASE}/api/v4/tasks", json=kommo("task_created.json"))
    assert client.create_task(9785993, text="x", complete_till=1) == 4745251


def test_patch_is_repeatable(rsps, client):
    rsps.patch(f"{BASE}/api/v4/tasks/4745251", status=502, body="")
    rsps.patch(f"{BASE}/api/v4/tasks/4745251", json=kommo("task_updated.json"))
    client.complete_task(4745251, "Cancelled")
    assert len(rsps.calls) == 2


def test_typed_errors(rsps, client, limiter):
    rsps.get(f"{BASE}/api/v4/leads/1", status=401, json=kommo("error_401.json"))
    rsps.get(f"{BASE}/api/v4/leads/2", status=402, json=kommo("error_402.json"))
    html = load_fixture("kommo/blocked_403.html")
    rsps.get(f"{BASE}/api/v4/leads/3", status=403, body=html, content_type="text/html")
    rsps.get(f"{BASE}/api/v4/leads/4", status=403, json={"title": "Forbidden", "status": 403, "detail": "No rights"})
    rsps.post(f"{BASE}/api/v4/leads/5/notes", status=400, json=kommo("error_400_validation.json"))
    for lead_id, error in [(1, KommoAuthError), (2, KommoPaymentRequired), (3, KommoIPBlocked), (4, KommoForbidden)]:
        with pytest.raises(error) as caught:
            client.get_lead(lead_id)
        assert not caught.value.retryable
    assert limiter.paused == [300.0]  # only the blocked-IP page holds every process back
    with pytest.raises(KommoValidationError) as caught:
        client.add_note(5, "x")
    assert caught.value.errors[0]["errors"][0]["code"] == "NotSupportedChoice"
    assert "custom_fields_values.0.field_id" in str(caught.value)


def test_the_token_never_reaches_errors_or_logs(rsps, client, caplog):
    caplog.set_level(logging.DEBUG)
    rsps.get(f"{BASE}/api/v4/leads/1", status=401, json=kommo("error_401.json"))
    with pytest.raises(KommoAuthError) as caught:
        client.get_lead(1)
    assert TOKEN not in str(caught.value) and TOKEN not in caplog.text
    assert "KOMMO_ACCESS_TOKEN" in str(caught.value)


def test_users_are_cached_in_the_shared_cache(rsps, client, limiter, slept):
    rsps.get(f"{BASE}/api/v4/users", json=kommo("users.json"))
    assert client.user_id_for_email("marta.ruiz@ACME-sales.example") == 504141
    other = KommoClient(BASE, TOKEN, requests.Session(), limiter, slept.append, cache=cache)  # another process
    assert other.user_id_for_email("tom.baker@acme-sales.example") == 504142
    assert other.user_id_for_email("old@acme-sales.example") is None  # inactive
    assert len(rsps.calls) == 1


def test_users_without_admin_rights_fall_back_quietly(rsps, client):
    forbidden = {"title": "Forbidden", "status": 403, "detail": "Insufficient rights"}
    rsps.get(f"{BASE}/api/v4/users", status=403, json=forbidden)
    assert client.user_id_for_email("marta.ruiz@acme-sales.example") is None
    assert client.user_id_for_email("marta.ruiz@acme-sales.example") is None
    assert len(rsps.calls) == 1


def test_inbound_lead_returns_the_new_ids(rsps, client):
    rsps.post(f"{BASE}/api/v4/leads/unsorted/forms", json=kommo("unsorted_created.json"))
    result = client.create_inbound_lead(
        source_uid="calsync-calendly", source_name="Calendly", lead_name="Ann", contact_name="Ann", email="a@b.example"
    )
    assert result == {"uid": "f03c796a1d4e4e2b9a4a6c2f3b2d1e0f", "lead_id": 9786000, "contact_id": 12117300}
    sent = rsps.calls[0].request.body
    assert b'"field_code": "EMAIL"' in sent and b'"source_uid": "calsync-calendly"' in sent


def test_lists_follow_pages(rsps, client):
    page1 = kommo("notes_list.json")
    page1["_links"]["next"] = {"href": f"{BASE}/api/v4/leads/9785993/notes?page=2"}
    url = f"{BASE}/api/v4/leads/9785993/notes"
    rsps.get(url, json=page1, match=[matchers.query_param_matcher({"page": "1", "limit": "250"})])
    rsps.get(url, status=204, match=[matchers.query_param_matcher({"page": "2", "limit": "250"})])
    assert len(client.list_notes(9785993)) == 2


def test_missing_configuration_is_a_clear_permanent_error():
    from calsync.errors import PermanentSyncError

    with pytest.raises(PermanentSyncError, match="KOMMO_BASE_URL"):
        KommoClient("", "", requests.Session())


def test_system_check_warns_only_about_a_half_done_configuration(settings):
    from crm.checks import check_kommo_settings

    settings.KOMMO_BASE_URL, settings.KOMMO_ACCESS_TOKEN = "", ""
    assert check_kommo_settings(None) == []  # not configured: Kommo sync simply idles
    settings.KOMMO_BASE_URL = "https://acme.kommo.com"
    assert [w.id for w in check_kommo_settings(None)] == ["crm.W001"]
    settings.KOMMO_ACCESS_TOKEN = "token"
    assert check_kommo_settings(None) == []
