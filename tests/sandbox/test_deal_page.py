"""The deal links in calsync's admin open a read-only HTML page of the deal on the Kommo emulator."""

from __future__ import annotations

import requests

from crm.deal_names import deal_url
from tests.sandbox.conftest import get


def test_the_deal_link_calsync_builds_opens_a_page_with_the_deal_its_contacts_notes_and_tasks(kommo, kapi, settings):
    note = [{"note_type": "common", "params": {"text": "Meeting booked <script>alert(1)</script>\nJoin: https://zoom"}}]
    assert kapi.post(f"{kommo.url}/api/v4/leads/100/notes", json=note).ok
    task = [{"text": "Meeting with Ann & co", "complete_till": 1_795_100_000, "entity_type": "leads", "entity_id": 100}]
    assert kapi.post(f"{kommo.url}/api/v4/tasks", json=task).ok
    settings.KOMMO_BASE_URL = kommo.url

    page = requests.get(deal_url(100), timeout=5)  # no token: a person's browser, not the API

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert "Open deal" in html and "Marta Ruiz" in html  # the deal and its responsible user
    assert "Ann Lee" in html and "ann@x.example" in html  # its contact
    assert "Meeting booked &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "Meeting with Ann &amp; co" in html and "open" in html
    assert "SANDBOX" in html
    assert kommo.state()["requests"]["total"] == 2  # the page is not an API call: not counted, no rate limit


def test_an_unknown_deal_is_a_404_page(kommo):
    page = get(f"{kommo.url}/leads/detail/999")
    assert page.status_code == 404 and "No deal 999" in page.text
    assert page.headers["Content-Type"].startswith("text/html")


def test_the_api_still_needs_its_token(kommo):
    assert get(f"{kommo.url}/api/v4/leads/100").status_code == 401
