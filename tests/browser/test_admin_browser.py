"""A sales-ops user in a real browser: log in, resolve a review item, replay a failed event.

Playwright drives Debian's Chromium (`apt-get install chromium`; .ci/run installs it) headless against
the live test server, which talks to a real Kommo emulator over loopback. Screenshots of the three main
screens go to the test's tmp dir, and to CALSYNC_SCREENSHOTS_DIR when set (docs/screenshots/ is made so).
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


def test_sales_ops_resolves_a_review_and_replays_a_failed_event(live_server, kommo, settings, tmp_path, screenshots):
    from playwright.sync_api import expect, sync_playwright

    # A booking processed while the Kommo token was wrong: failed, needs attention.
    settings.KOMMO_ACCESS_TOKEN = "revoked-token"
    jonas = variant(
        "calendly/invitee_created.json",
        email="jonas.weber@kunde.example",
        name="Jonas Weber",
        uri="https://api.calendly.com/scheduled_events/8c2f7e0a/invitees/jonas",
        questions_and_answers=[],
    )
    failed = deliver(jonas)
    assert failed.needs_attention, failed.last_error
    # The token is fixed; Lucía books, and she has two open deals: a review item.
    settings.KOMMO_ACCESS_TOKEN = demo.KOMMO_TOKEN
    deliver(variant("calendly/invitee_created.json", questions_and_answers=[]))
    assert KommoLink.objects.get(booking__invitee_email=demo.DEMO_INVITEE_EMAIL).review_state == "open"

    user = User.objects.create_user("marta", password="a-long-password-1", is_staff=True)
    user.groups.add(sales_ops_group())

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the ORM below runs beside Playwright's event loop
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)

            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "marta")
            page.fill("#id_password", "a-long-password-1")
            page.click("input[type=submit]")
            banner = page.locator("#review-banner")
            expect(banner).to_contain_text("1 meeting waits for review")

            # Resolve the review item by picking a candidate deal.
            banner.locator("a").click()
            page.get_by_role("link", name="30-min Product Demo").click()
            expect(page.locator("#review-reason")).to_contain_text("needs review")
            expect(page.locator("#candidates")).to_contain_text("ClientCo — onboarding")
            screenshots.append(tmp_path / "review-screen.png")
            page.screenshot(path=str(screenshots[-1]), full_page=True)
            page.check(f"#choice-deal-{ONBOARDING_DEAL}")
            page.click("#save-decision")
            expect(page.locator(".messagelist")).to_contain_text(f"assigned to deal {ONBOARDING_DEAL}")
            expect(page.locator("#result_list")).to_have_count(0)  # the queue is empty
            link = KommoLink.objects.get(booking__invitee_email=demo.DEMO_INVITEE_EMAIL)
            assert (link.lead_id, link.decided_by_id, link.review_state) == (ONBOARDING_DEAL, user.pk, "resolved")
            assert any(t["entity_id"] == ONBOARDING_DEAL for t in kommo.state()["tasks"])

            # Replay the failed event from the events list.
            page.goto(f"{live_server.url}/admin/bookings/webhookevent/?status__exact=failed")
            expect(page.locator("#result_list")).to_contain_text("needs attention")
            screenshots.append(tmp_path / "events-list.png")
            page.screenshot(path=str(screenshots[-1]), full_page=True)
            page.check(f"input[name=_selected_action][value='{failed.pk}']")
            page.select_option("select[name=action]", "replay_selected")
            page.click("button[name=index]")
            expect(page.locator(".messagelist")).to_contain_text(f"#{failed.pk}: queued")
            page.goto(f"{live_server.url}/admin/bookings/webhookevent/{failed.pk}/change/")
            expect(page.locator("body")).to_contain_text("Processed: the booking, Kommo and Zoom are up to date")
            assert WebhookEvent.objects.get(pk=failed.pk).status == "done"

            # The booking's story, for the third screenshot.
            page.goto(f"{live_server.url}/admin/bookings/booking/{failed.booking_id}/change/")
            expect(page.locator("body")).to_contain_text("Calendly sent invitee.created")
            screenshots.append(tmp_path / "booking-timeline.png")
            page.screenshot(path=str(screenshots[-1]), full_page=True)
            browser.close()
            # Inside Playwright's event loop Django keeps a separate (context-local) connection: close it here,
            # or PostgreSQL refuses to drop the test database at the end of the run.
            connections.close_all()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
