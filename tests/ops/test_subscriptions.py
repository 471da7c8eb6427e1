"""manage.py calendly_webhook and the scheduled subscription watch (alert + safe recreate)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.models import Schedule

from bookings.tasks import watch_calendly_subscription
from calsync.models import Alert
from tests.conftest import SIGNING_KEY
from tests.ops.api import API, HOOK_URL, ME, ORG, SUB_URI, api_json, mock_me, mock_subscriptions, subscription

pytestmark = pytest.mark.django_db

NEW_URI = "https://api.calendly.com/webhook_subscriptions/5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
ALL_KINDS = ["invitee.created", "invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted"]
OLD_KINDS = ["invitee.created", "invitee.canceled"]  # what calsync asked for before it handled no-shows


def run(*args) -> str:
    out = StringIO()
    call_command("calendly_webhook", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- subscribe ----------------------------------------------------------------------------------------


def test_subscribe_uses_the_configured_key_and_never_prints_it(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [])
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("webhook_subscription_created.json"), status=201)
    output = run("subscribe", "--url", HOOK_URL)
    body = json.loads(rsps.calls[2].request.body)
    assert body == {
        "url": HOOK_URL,
        "events": ALL_KINDS,
        "organization": ORG,
        "scope": "organization",
        "signing_key": SIGNING_KEY,
    }
    assert SUB_URI in output and "active" in output
    assert SIGNING_KEY not in output


def test_subscribe_without_a_key_generates_one_and_prints_it_once(rsps, settings):
    settings.CALENDLY_SIGNING_KEYS = []
    mock_me(rsps)
    mock_subscriptions(rsps, [])
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("webhook_subscription_created.json"), status=201)
    output = run("subscribe", "--url", HOOK_URL)
    key = json.loads(rsps.calls[2].request.body)["signing_key"]
    assert len(key) >= 40
    assert output.count(key) == 1 and f"CALENDLY_SIGNING_KEY={key}" in output
    assert "shown only this once" in output


def test_subscribe_user_scope_names_the_user(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [], scope="user")
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("webhook_subscription_created.json"), status=201)
    run("subscribe", "--url", HOOK_URL, "--scope", "user")
    body = json.loads(rsps.calls[2].request.body)
    assert body["scope"] == "user" and body["user"] == ME


def test_subscribe_409_shows_the_existing_subscription(rsps, settings):
    settings.CALENDLY_SIGNING_KEYS = []
    mock_me(rsps)
    mock_subscriptions(rsps, [])  # in another scope, or made a moment ago: Calendly still knows the URL
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("error_409_already_exists.json"), status=409)
    mock_subscriptions(rsps, [subscription("active", created_at="2026-10-01T08:00:00.000000Z")])
    output = run("subscribe", "--url", HOOK_URL)
    assert "already subscribed" in output and SUB_URI in output and "2026-10-01" in output
    assert "CALENDLY_SIGNING_KEY=" not in output  # the generated key was not used: never show it


def test_subscribe_needs_a_url(settings):
    settings.CALENDLY_WEBHOOK_URL = ""
    with pytest.raises(CommandError, match="--url"):
        run("subscribe")


def test_commands_explain_a_missing_token(settings):
    settings.CALENDLY_API_TOKEN = ""
    with pytest.raises(CommandError, match="CALENDLY_API_TOKEN"):
        run("list")


# --- list, delete, check ------------------------------------------------------------------------------


def test_list_shows_every_subscription_in_scope(rsps):
    mock_me(rsps)
    rsps.get(f"{API}/webhook_subscriptions", json=api_json("webhook_subscriptions_page1.json"))
    rsps.get(f"{API}/webhook_subscriptions", json=api_json("webhook_subscriptions_page2.json"))
    output = run("list")
    assert "other-tool.example.net" in output and HOOK_URL in output


def test_delete(rsps):
    rsps.delete(SUB_URI, status=204)
    assert "Deleted" in run("delete", SUB_URI)


def test_delete_unknown_subscription_is_a_clear_error(rsps):
    rsps.delete(
        SUB_URI,
        status=404,
        json={"title": "Resource Not Found", "message": "The server could not find the requested resource."},
    )
    with pytest.raises(CommandError, match="404"):
        run("delete", SUB_URI)


def test_check_active_exits_zero(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active")])
    assert "active" in run("check")


def test_check_disabled_exits_one(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    with pytest.raises(CommandError, match="DISABLED") as caught:
        run("check")
    assert caught.value.returncode == 1


def test_check_missing_exits_two(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", url="https://elsewhere.example/hook")])
    with pytest.raises(CommandError, match="no webhook subscription") as caught:
        run("check", "--url", HOOK_URL)
    assert caught.value.returncode == 2


# --- the scheduled watch --------------------------------------------------------------------------------


def test_watch_schedules_exist():
    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {
        "bookings.tasks.watch_calendly_subscription",
        "bookings.tasks.backfill_recent_bookings",
        "bookings.tasks.redact_old_events",
        "ops.tasks.send_alert_digest",
    } <= funcs


def test_watch_active_is_quiet(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active")])
    assert watch_calendly_subscription() == "active"
    assert not Alert.objects.exists()


def test_watch_skips_without_configuration(settings):
    settings.CALENDLY_API_TOKEN = ""
    assert watch_calendly_subscription().startswith("skipped")


def test_disabled_subscription_raises_one_alert_and_is_left_alone_when_recreation_is_off(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    assert watch_calendly_subscription().startswith("disabled")
    alert = Alert.objects.get()
    assert alert.kind == "subscription_disabled" and SUB_URI in alert.summary
    assert [c.request.method for c in rsps.calls] == ["GET", "GET"]  # nothing created or deleted
    # The next run finds the same problem: no second alert.
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    watch_calendly_subscription()
    assert Alert.objects.count() == 1


def test_disabled_subscription_is_recreated_before_the_old_one_is_deleted(rsps, settings):
    settings.CALENDLY_RECREATE_DISABLED_SUBSCRIPTION = True
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    created = subscription("active", uri=NEW_URI)
    rsps.post(f"{API}/webhook_subscriptions", json={"resource": created}, status=201)
    rsps.delete(SUB_URI, status=204)
    result = watch_calendly_subscription()
    assert NEW_URI in result
    assert [(c.request.method, c.request.url.split("?")[0]) for c in rsps.calls] == [
        ("GET", f"{API}/users/me"),
        ("GET", f"{API}/webhook_subscriptions"),
        ("POST", f"{API}/webhook_subscriptions"),  # the new one first…
        ("DELETE", SUB_URI),  # …the old one only after the create succeeded
    ]
    body = json.loads(rsps.calls[2].request.body)
    assert body["url"] == HOOK_URL and body["signing_key"] == SIGNING_KEY
    assert body["events"] == ALL_KINDS
    assert NEW_URI in Alert.objects.get().summary


def test_recreate_uses_a_url_variant_when_the_disabled_one_still_holds_the_url(rsps, settings):
    settings.CALENDLY_RECREATE_DISABLED_SUBSCRIPTION = True
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("error_409_already_exists.json"), status=409)
    mock_subscriptions(rsps, [subscription("disabled")])  # the client looks up the URL's holder
    variant = f"{HOOK_URL}?calsync_generation=1"
    rsps.post(
        f"{API}/webhook_subscriptions", json={"resource": subscription("active", uri=NEW_URI, url=variant)}, status=201
    )
    rsps.delete(SUB_URI, status=204)
    watch_calendly_subscription()
    second_post = [c for c in rsps.calls if c.request.method == "POST"][1]
    assert json.loads(second_post.request.body)["url"].startswith(f"{HOOK_URL}?calsync_generation=")
    assert rsps.calls[-1].request.method == "DELETE"
    # The variant reaches the same webhook view, and later checks recognise it as ours.
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", uri=NEW_URI, url=variant)])
    assert watch_calendly_subscription() == "active"


def test_a_failed_create_leaves_the_old_subscription_in_place(rsps, settings):
    settings.CALENDLY_RECREATE_DISABLED_SUBSCRIPTION = True
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("error_403_plan.json"), status=403)
    result = watch_calendly_subscription()
    assert "recreate failed" in result
    assert "DELETE" not in [c.request.method for c in rsps.calls]
    alert = Alert.objects.get()
    assert "left in place" in alert.summary and "upgrade" in alert.summary


def test_recreate_refuses_without_a_signing_key(rsps, settings):
    settings.CALENDLY_RECREATE_DISABLED_SUBSCRIPTION = True
    settings.CALENDLY_SIGNING_KEYS = []
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    assert "CALENDLY_SIGNING_KEY" in watch_calendly_subscription()
    assert [c.request.method for c in rsps.calls] == ["GET", "GET"]


def test_missing_subscription_raises_an_alert(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [])
    assert watch_calendly_subscription().startswith("missing")
    assert Alert.objects.get().kind == "subscription_missing"


# --- every handled kind ---------------------------------------------------------------------------------


def test_subscribed_kinds_are_the_dispatch_table():
    from bookings.state import HANDLERS, handled_kinds

    assert list(handled_kinds()) == list(HANDLERS) == ALL_KINDS


def test_check_reports_a_subscription_without_the_no_show_kinds(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", events=OLD_KINDS)])
    with pytest.raises(CommandError, match=r"invitee_no_show\.created, invitee_no_show\.deleted") as caught:
        run("check")
    assert caught.value.returncode == 3
    assert "subscribe --upgrade" in str(caught.value)


def test_subscribe_on_an_old_subscription_says_how_to_upgrade(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", events=OLD_KINDS)])
    output = run("subscribe", "--url", HOOK_URL)
    assert "does not deliver invitee_no_show.created, invitee_no_show.deleted" in output
    assert "--upgrade" in output


def test_upgrade_creates_the_new_subscription_before_deleting_the_old(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", events=OLD_KINDS)])
    # The old one still holds the URL: Calendly refuses a second subscription for it.
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("error_409_already_exists.json"), status=409)
    mock_subscriptions(rsps, [subscription("active", events=OLD_KINDS)])
    variant = f"{HOOK_URL}?calsync_generation=1"
    created = subscription("active", uri=NEW_URI, url=variant)
    rsps.post(f"{API}/webhook_subscriptions", json={"resource": created}, status=201)
    rsps.delete(SUB_URI, status=204)
    output = run("subscribe", "--url", HOOK_URL, "--upgrade")
    methods = [c.request.method for c in rsps.calls]
    assert methods == ["GET", "GET", "POST", "GET", "POST", "DELETE"]  # the delete comes last
    posted = json.loads(rsps.calls[4].request.body)
    assert posted["events"] == ALL_KINDS and posted["signing_key"] == SIGNING_KEY
    assert "Upgraded" in output and NEW_URI in output and "deleted" in output


def test_subscribe_after_an_upgrade_finds_the_url_variant_and_creates_nothing(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", uri=NEW_URI, url=f"{HOOK_URL}?calsync_generation=1")])
    output = run("subscribe", "--url", HOOK_URL)
    assert "already subscribed" in output and NEW_URI in output and "does not deliver" not in output
    assert [c.request.method for c in rsps.calls] == ["GET", "GET"]


def test_a_failed_upgrade_leaves_the_old_subscription_alone(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", events=OLD_KINDS)])
    rsps.post(f"{API}/webhook_subscriptions", json=api_json("error_403_plan.json"), status=403)
    with pytest.raises(CommandError):
        run("subscribe", "--url", HOOK_URL, "--upgrade")
    assert "DELETE" not in [c.request.method for c in rsps.calls]


def test_upgrade_of_a_complete_subscription_changes_nothing(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active")])
    output = run("subscribe", "--url", HOOK_URL, "--upgrade")
    assert "already delivers every kind" in output
    assert [c.request.method for c in rsps.calls] == ["GET", "GET"]


def test_watch_flags_a_subscription_lacking_a_handled_kind(rsps):
    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("active", events=OLD_KINDS)])
    assert watch_calendly_subscription().startswith("incomplete")
    alert = Alert.objects.get()
    assert alert.kind == "subscription_incomplete"
    assert "invitee_no_show.created" in alert.summary and "--upgrade" in alert.summary
    assert [c.request.method for c in rsps.calls] == ["GET", "GET"]  # flagged, not changed
