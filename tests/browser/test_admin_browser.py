"""A sales-ops person in a real browser, at 1400 px, doing each task of the job through clicks.

Resolve a review item by picking a candidate deal, by typing a deal id (a closed deal: warned, then
confirmed), by creating an incoming lead; replay a failed event from its page; sync a booking again from
its page (Kommo unpaid, then paid). After each, the Kommo emulator's state says what really happened.
The lists are checked to show their status column without horizontal scrolling.

Playwright drives Debian's Chromium (`apt-get install chromium`; .ci/run installs it) headless against
the live test server, which talks to a real Kommo emulator over loopback. Screenshots of the main screens
go to the test's tmp dir, and to CALSYNC_SCREENSHOTS_DIR when set (docs/screenshots/ is made so).
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.db import connections

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import WebhookEvent
from crm.models import KommoLink
from sandbox import demo
from sandbox.kommo_emulator import KommoEmulator
from tests.conftest import to_body, variant

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ONBOARDING_DEAL = 18734600
CLOSED_DEAL = 18734400  # "ClientCo — pilot", won: typing it gets a warning
WIDTH = 1400


def kommo_seed() -> dict:
    """The demo CRM, with a second open deal for the sample invitee: calsync must ask staff which one."""
    seed = demo.kommo_seed()
    seed["leads"].append({"id": ONBOARDING_DEAL, "name": "ClientCo — onboarding", "price": 4000, "status_id": 49366088})
    seed["contacts"][0]["lead_ids"].append(ONBOARDING_DEAL)
    return seed


def sales_ops_group() -> Group:
    """The group the data migration makes; a transactional test that ran before may have flushed it."""
    if not Group.objects.filter(name="Sales ops").exists():
        migration = importlib.import_module("crm.migrations.0003_sales_ops_group")
        migration.create_group(django_apps, None)
    return Group.objects.get(name="Sales ops")


def deliver(data: dict) -> WebhookEvent:
    event = WebhookEvent.objects.get(pk=store_delivery(to_body(data)).event.pk)
    processing.process_event(event.pk)
    event.refresh_from_db()
    return event


@pytest.fixture
def kommo(settings):
    with KommoEmulator.running(seed=kommo_seed()) as emulator:
        settings.KOMMO_BASE_URL = emulator.url
        settings.KOMMO_ACCESS_TOKEN = demo.KOMMO_TOKEN
        settings.KOMMO_SEVERAL_DEALS_POLICY = "review"
        settings.KOMMO_NO_DEAL_POLICY = "inbound_lead"
        settings.CALSYNC_RECONCILERS = ["crm.sync.reconcile"]
        settings.CALSYNC_TIME_ZONE = settings.TIME_ZONE = "Europe/Madrid"
        # The server runs on the fixed test clock, Chromium on the machine's: cookies that expire at a
        # server date would already be expired for the browser once the real date passes it. Session
        # cookies (no expiry date) keep the login whatever the two clocks say.
        settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
        settings.CSRF_COOKIE_AGE = None
        yield emulator


@pytest.fixture
def screenshots(tmp_path) -> list[Path]:
    shots: list[Path] = []
    yield shots
    target = os.environ.get("CALSYNC_SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(target) / shot.name)


def assert_fits(page, status_column: str) -> None:
    """No horizontal scrolling at 1400 px (the page, nor the list's own box), and the status column is on screen."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= page.evaluate("window.innerWidth"), f"{page.url}: {scroll_width}px wide"
    inner = page.evaluate(
        "(() => { const r = document.querySelector('#changelist .results'); return [r.scrollWidth, r.clientWidth]; })()"
    )
    widths = page.evaluate("[...document.querySelectorAll('#result_list thead th')].map(t => t.offsetWidth)")
    assert inner[0] <= inner[1], f"{page.url}: the list scrolls sideways ({inner[0]}px in {inner[1]}px): {widths}"
    for cell in page.locator("#result_list thead th").all():
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= WIDTH, f"{page.url}: a column is off-screen: {box}"
    box = page.locator(f"#result_list th.column-{status_column}").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, box


def shot(page, screenshots: list[Path], tmp_path: Path, name: str) -> None:
    screenshots.append(tmp_path / f"{name}.png")
    page.screenshot(path=str(screenshots[-1]), full_page=True)


def incoming_lead_for(emulator: KommoEmulator, email: str) -> bool:
    """Whether Kommo's Incoming leads hold one whose contact has this e-mail."""
    state = emulator.state()
    contacts = {c["id"] for c in state["contacts"] if email in str(c)}
    return any(contacts & set(item["contact_ids"]) for item in state["unsorted"])


def row(page, text: str):
    return page.locator("#result_list tbody tr", has_text=text)


def test_sales_ops_does_each_task_through_clicks(live_server, kommo, settings, tmp_path, screenshots):
    from playwright.sync_api import expect, sync_playwright

    # A booking processed while the Kommo token was wrong: failed, needs attention.
    settings.KOMMO_ACCESS_TOKEN = "revoked-token"
    weber = variant(
        "calendly/invitee_created.json",
        email="jonas.weber@kunde.example",
        name="Jonas Weber",
        uri="https://api.calendly.com/scheduled_events/8c2f7e0a/invitees/jonas",
        questions_and_answers=[],
    )
    failed = deliver(weber)
    assert failed.needs_attention, failed.last_error
    # The token is fixed. Three meetings wait for a person: Lucía and Jonas Becker have several open
    # deals; Nina Prospect is unknown to Kommo, and the policy says to ask.
    settings.KOMMO_ACCESS_TOKEN = demo.KOMMO_TOKEN
    settings.KOMMO_NO_DEAL_POLICY = "review"
    deliver(variant("calendly/invitee_created.json", questions_and_answers=[]))
    for key, (email, name) in (("becker", demo.INVITEES["several-deals"]), ("nina", demo.INVITEES["unknown"])):
        deliver(
            variant(
                "calendly/invitee_created.json",
                email=email,
                name=name,
                uri=f"https://api.calendly.com/scheduled_events/8c2f7e0a/invitees/{key}",
                questions_and_answers=[],
            )
        )
    settings.KOMMO_NO_DEAL_POLICY = "inbound_lead"
    assert KommoLink.objects.filter(review_state="open").count() == 3

    user = User.objects.create_user("marta", password="a-long-password-1", is_staff=True)
    user.groups.add(sales_ops_group())

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the ORM below runs beside Playwright's event loop
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.set_default_timeout(15_000)

            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "marta")
            page.fill("#id_password", "a-long-password-1")
            page.click("input[type=submit]")
            banner = page.locator("#attention-banner")
            expect(banner).to_contain_text("1 event failed and will not be retried on its own")
            expect(banner).to_contain_text("1 booking is not in sync with Kommo or Zoom")
            expect(banner).to_contain_text("3 meetings wait for you to choose the Kommo deal")
            shot(page, screenshots, tmp_path, "admin-index")

            # The review queue: soonest meeting first, who and why in words.
            page.click("#attention-review a")
            expect(page.locator("#review-count")).to_contain_text("3 meetings wait for a decision")
            assert_fits(page, "meeting_time")
            expect(row(page, "Lucía")).to_contain_text("has 2 open deals in Kommo")
            shot(page, screenshots, tmp_path, "review-queue")

            # 1. Resolve by picking a candidate deal.
            row(page, "Lucía").get_by_role("link", name="Choose the deal").click()
            expect(page.locator("#candidates")).to_contain_text("ClientCo — onboarding")
            page.check(f"#choice-deal-{ONBOARDING_DEAL}")
            page.click("#save-decision")
            expect(page.locator(".messagelist")).to_contain_text(f"is assigned to deal {ONBOARDING_DEAL}. Sync: done")
            link = KommoLink.objects.get(booking__invitee_email=demo.DEMO_INVITEE_EMAIL)
            assert (link.lead_id, link.decided_by_id, link.review_state) == (ONBOARDING_DEAL, user.pk, "resolved")
            assert any(t["entity_id"] == ONBOARDING_DEAL for t in kommo.state()["tasks"])

            # 2. Resolve by typing a deal id: typing ticks "Another deal"; a closed deal is warned about first.
            row(page, "Jonas Becker").get_by_role("link", name="Choose the deal").click()
            page.fill("#id_deal_id", str(CLOSED_DEAL))
            expect(page.locator("#choice-other")).to_be_checked()
            page.click("#save-decision")
            expect(page.locator("#checked-deal")).to_contain_text("ClientCo — pilot")
            expect(page.locator("#deal-warning")).to_contain_text("the deal is closed (won or lost)")
            shot(page, screenshots, tmp_path, "review-screen")
            assert KommoLink.objects.get(booking__invitee_name="Jonas Becker").lead_id is None  # not yet
            expect(page.locator("#save-decision")).to_have_value("Use this deal anyway")
            page.click("#save-decision")
            expect(page.locator(".messagelist")).to_contain_text(f"is assigned to deal {CLOSED_DEAL}")
            assert KommoLink.objects.get(booking__invitee_name="Jonas Becker").lead_id == CLOSED_DEAL
            assert any(t["entity_id"] == CLOSED_DEAL for t in kommo.state()["tasks"])

            # 3. Create an incoming lead.
            row(page, "Nina Prospect").get_by_role("link", name="Choose the deal").click()
            page.check("#choice-inbound")
            page.click("#save-decision")
            expect(page.locator(".messagelist")).to_contain_text("A new incoming lead is being made in Kommo")
            expect(page.locator(".messagelist")).to_contain_text("Sync: done")
            expect(page.locator("#review-count")).to_contain_text("0 meetings wait")
            assert incoming_lead_for(kommo, "nina.prospect@newco.example")

            # 4. Replay the failed event from its page, reached from the front page's banner.
            page.goto(f"{live_server.url}/admin/")
            page.click("#attention-failed_events a")
            expect(page.locator("#result_list")).to_contain_text("needs attention")
            assert_fits(page, "coloured_status")
            shot(page, screenshots, tmp_path, "events-list")
            row(page, "jonas.weber@kunde.example").locator("th a, td a").first.click()
            expect(page.locator("body")).to_contain_text("Kommo refused calsync’s token")
            page.click("#replay-event")
            expect(page.locator(".messagelist")).to_contain_text(f"Event #{failed.pk}: done")
            expect(page.locator("body")).to_contain_text("Processed: the booking, Kommo and Zoom are up to date")
            assert WebhookEvent.objects.get(pk=failed.pk).status == "done"
            assert incoming_lead_for(kommo, "jonas.weber@kunde.example")

            # 5. Sync a booking again from its page: someone deleted Lucía's task and Kommo is unpaid.
            task = next(t for t in kommo.state()["tasks"] if t["entity_id"] == ONBOARDING_DEAL)
            kommo.control_action("delete_task", "POST", {"id": task["id"]})
            kommo.set_faults([{"method": "POST", "path": "/api/v4/*", "fault": "error_before", "status": 402}])
            page.goto(f"{live_server.url}/admin/bookings/booking/")
            expect(row(page, "Lucía")).to_contain_text("In sync")
            row(page, "Lucía").locator("th a, td a").first.click()
            page.click("#sync-again")
            expect(page.locator(".messagelist")).to_contain_text("failed again: Kommo says the account is unpaid")
            expect(page.locator(".field-health_detail")).to_contain_text("Needs attention")
            assert not any(t["entity_id"] == ONBOARDING_DEAL for t in kommo.state()["tasks"])
            # The list says so first, and fits the screen.
            page.goto(f"{live_server.url}/admin/bookings/booking/")
            expect(row(page, "Lucía")).to_contain_text("Needs attention")
            assert_fits(page, "health")
            shot(page, screenshots, tmp_path, "bookings-list")
            row(page, "Lucía").locator("th a, td a").first.click()
            kommo.set_faults([])
            page.click("#sync-again")
            expect(page.locator(".messagelist")).to_contain_text("Lucía Fernández’s meeting: done")
            expect(page.locator(".messagelist")).to_contain_text("Repaired: Meeting task")
            expect(page.locator(".field-health_detail")).to_contain_text("In sync")
            assert any(t["entity_id"] == ONBOARDING_DEAL for t in kommo.state()["tasks"])
            shot(page, screenshots, tmp_path, "booking-timeline")
            browser.close()
            # Inside Playwright's event loop Django keeps a separate (context-local) connection: close it here,
            # or PostgreSQL refuses to drop the test database at the end of the run.
            connections.close_all()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
