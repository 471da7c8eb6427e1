"""crm.sync.reconcile through the real pipeline (bookings.processing.process_event) against wire-level mocks."""

import pytest
import requests
from responses import matchers

from bookings import processing
from bookings.intake import Outcome, store_delivery
from bookings.models import Booking
from crm.models import KommoLink, RememberedDeal, marker_token
from crm.review import assign_deal, create_inbound_lead_for, skip
from crm.sync import reconcile
from tests.crm.conftest import (
    BASE,
    EMAIL,
    TOKEN,
    booking,
    calendly,
    contacts_body,
    deliver,
    kommo,
    leads_body,
    sent,
    to_body,
    warm_users,
    with_marker,
    without_deal_id,
)

pytestmark = pytest.mark.django_db

LUCIA = "b7e1c9d2-4a3f-4e8b-8c1d-5f6a7b8c9d0e"
START = 1796223600  # 2026-12-02 15:00 UTC
NOTES = f"{BASE}/api/v4/leads/9785993/notes"
TASKS = f"{BASE}/api/v4/tasks"
TASK = f"{BASE}/api/v4/tasks/4745251"


def expect_search(rsps, *lead_ids, email=EMAIL):
    query = matchers.query_param_matcher({"query": email, "with": "leads", "limit": "50"})
    rsps.get(f"{BASE}/api/v4/contacts", json=contacts_body(*lead_ids, email=email), match=[query])
    if lead_ids:
        rsps.get(f"{BASE}/api/v4/leads", json=leads_body(*lead_ids))


def expect_note(rsps, lead_id=9785993, note_id=76787983, **kw):
    body = kommo("note_created.json")
    body["_embedded"]["notes"][0].update(id=note_id, entity_id=lead_id)
    rsps.post(f"{BASE}/api/v4/leads/{lead_id}/notes", json=body, **kw)


def expect_task(rsps, task_id=4745251):
    body = kommo("task_created.json")
    body["_embedded"]["tasks"][0]["id"] = task_id
    rsps.post(TASKS, json=body)


def methods(rsps, start=0):
    return [(c.request.method, c.request.url.split("?")[0].removeprefix(BASE)) for c in rsps.calls[start:]]


def book_lucia(rsps):
    """Lucía books; her contact has one open deal. Users are cached already."""
    warm_users()
    expect_search(rsps, 9785993)
    expect_note(rsps)
    expect_task(rsps)
    status, event = deliver(without_deal_id())
    assert status == "done", event.last_error
    return event


# --- booked -----------------------------------------------------------------------------------------


def test_booked_meeting_with_one_open_deal_costs_four_requests(rsps):
    event = book_lucia(rsps)
    assert methods(rsps) == [
        ("GET", "/api/v4/contacts"),
        ("GET", "/api/v4/leads"),
        ("POST", "/api/v4/leads/9785993/notes"),
        ("POST", "/api/v4/tasks"),
    ]
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in rsps.calls)
    token = marker_token(booking().invitee_uri)
    [note] = sent(rsps.calls[2])
    text = note["params"]["text"]
    assert note["note_type"] == "common"
    assert "30-min Product Demo" in text
    assert "Wednesday, 2 December 2026, 16:00–16:30 (Europe/Madrid)" in text  # the invitee's zone
    assert "Wednesday, 2 December 2026, 10:00–10:30 (America/New_York)" in text  # CALSYNC_TIME_ZONE
    assert "Duration: 30 min" in text and "Host: Marta Ruiz <marta.ruiz@acme-sales.example>" in text
    assert "Lucía Fernández <lucia.fernandez@clientco.example>" in text
    assert "Join: https://us06web.zoom.us/j/85512345678?pwd=bVqT3xR8yK2nW5pL9cJ7hF4dS1aZ6e.1" in text  # no &amp;
    assert "- What would you like to discuss?: Pricing for 25 seats and the onboarding plan" in text
    assert f"Reschedule: https://calendly.com/reschedulings/{LUCIA}" in text
    assert f"Cancel: https://calendly.com/cancellations/{LUCIA}" in text
    assert text.endswith(f"[calsync:{token}/booked]")
    [task] = sent(rsps.calls[3])
    assert task.pop("text").endswith(f"[calsync:{token}/task]")
    assert task == {
        "task_type_id": 2,
        "complete_till": START,
        "duration": 1800,
        "entity_id": 9785993,
        "entity_type": "leads",
        "responsible_user_id": 504141,  # the Calendly host, found by email among Kommo users
    }
    link = KommoLink.objects.get()
    assert (link.lead_id, link.contact_id, link.task_id, link.match_method) == (
        9785993,
        12117258,
        4745251,
        "single_open_deal",
    )
    assert link.note_ids == {f"booked:{token}@9785993": 76787983} and link.pending_writes == {}
    assert booking().crm_status == Booking.CrmStatus.MATCHED
    assert (
        event.processing_attempts.get().steps[-1]["detail"]
        == "deal 9785993 (single_open_deal); note 76787983; task 4745251"
    )


def test_users_are_fetched_once_then_cached(rsps):
    expect_search(rsps, 9785993)
    rsps.get(f"{BASE}/api/v4/users", json=kommo("users.json"))
    expect_note(rsps)
    expect_task(rsps)
    deliver(without_deal_id())
    assert len(rsps.calls) == 5
    second = without_deal_id()
    second["payload"]["uri"] = second["payload"]["uri"].replace(LUCIA, "aaaaaaaa-4a3f-4e8b-8c1d-5f6a7b8c9d0e")
    expect_search(rsps, 9785993)
    expect_note(rsps, note_id=76787990)
    expect_task(rsps, task_id=4745260)
    deliver(second)
    assert [m for _, m in methods(rsps, 5)].count("/api/v4/users") == 0 and len(rsps.calls) == 9


def test_host_not_in_kommo_gives_the_task_to_the_deals_responsible_user(rsps):
    warm_users()
    data = without_deal_id()
    data["payload"]["scheduled_event"]["event_memberships"][0]["user_email"] = "someone@else.example"
    expect_search(rsps, 9785994)
    expect_note(rsps, lead_id=9785994)
    expect_task(rsps)
    deliver(data)
    assert sent(rsps.calls[3])[0]["responsible_user_id"] == 504142


def test_replay_of_a_finished_event_makes_no_calls(rsps):
    event = book_lucia(rsps)
    result = processing.replay(event, inline=True)
    assert result.outcome == "done"
    assert len(rsps.calls) == 4
    assert event.processing_attempts.order_by("-number").first().steps[-1]["detail"] == "up to date"


def test_kommo_not_configured_does_nothing(rsps, settings):
    settings.KOMMO_BASE_URL = ""
    status, event = deliver(without_deal_id())
    assert status == "done" and len(rsps.calls) == 0
    assert event.processing_attempts.get().steps[-1]["detail"] == "Kommo not configured"


def test_blocked_ip_needs_attention_and_the_token_stays_secret(rsps):
    rsps.get(f"{BASE}/api/v4/contacts", status=403, body=b"<html><body>403 Forbidden</body></html>")
    status, event = deliver(without_deal_id())
    assert status == "failed" and event.needs_attention
    assert "blocked this IP" in event.last_error and TOKEN not in event.last_error + event.last_traceback


# --- matching through the pipeline -------------------------------------------------------------------


def expect_search_and_named(rsps, lead_ids, named, *, found=None, email=EMAIL):
    """The two reads when the booking names a deal: the invitee's contacts, then their deals and the
    named ones in one list (with their contacts). `found` is what Kommo has of them (default: all)."""
    query = matchers.query_param_matcher({"query": email, "with": "leads", "limit": "50"})
    rsps.get(f"{BASE}/api/v4/contacts", json=contacts_body(*lead_ids, email=email), match=[query])
    wanted = sorted({*lead_ids, *named})
    params = {"filter[id][]": [str(i) for i in wanted], "limit": "250", "with": "contacts"}
    found = wanted if found is None else found
    rsps.get(
        f"{BASE}/api/v4/leads",
        json=leads_body(*found) if found else None,
        status=200 if found else 204,
        match=[matchers.query_param_matcher(params)],
    )


def test_deal_id_answer_costs_four_requests(rsps):
    warm_users()
    expect_search_and_named(rsps, [9785993], [18734521])
    expect_note(rsps, lead_id=18734521)
    expect_task(rsps)
    deliver("invitee_created.json")
    assert len(rsps.calls) == 4  # contacts, deals, note, task
    link = KommoLink.objects.get()
    assert (link.lead_id, link.match_method, link.contact_id) == (18734521, "deal_id_answer", 12117258)


def test_unknown_deal_id_answer_falls_back_to_the_email(rsps):
    warm_users()
    expect_search_and_named(rsps, [9785993], [18734521], found=[9785993])
    expect_note(rsps)
    expect_task(rsps)
    deliver("invitee_created.json")
    assert len(rsps.calls) == 4
    link = KommoLink.objects.get()
    assert (link.lead_id, link.match_method) == (9785993, "single_open_deal")
    assert "'18734521' is not a deal in Kommo" in link.match_reason


def test_deal_id_in_the_booking_link(rsps):
    warm_users()
    data = without_deal_id()
    data["payload"]["tracking"]["utm_content"] = "deal-9785994"
    expect_search_and_named(rsps, [9785993, 9785994], [9785994])
    expect_note(rsps, lead_id=9785994)
    expect_task(rsps)
    deliver(data)
    assert KommoLink.objects.get().match_method == "deal_id_utm" and len(rsps.calls) == 4


def test_several_open_deals_most_recent_task_in_one_note_in_all(rsps):
    warm_users()
    expect_search(rsps, 9785993, 9785994, 9785995)
    expect_note(rsps, lead_id=9785994, note_id=1)
    expect_note(rsps, lead_id=9785993, note_id=2)
    expect_task(rsps)
    deliver(without_deal_id())
    assert sent(rsps.calls[4])[0]["entity_id"] == 9785994
    link = KommoLink.objects.get()
    assert (link.lead_id, link.extra_note_lead_ids, link.match_method) == (9785994, [9785993], "most_recent")
    assert len(link.note_ids) == 2


def test_only_closed_deals_make_an_incoming_lead(rsps, settings):
    settings.KOMMO_INBOUND_PIPELINE_ID = 5597036
    warm_users()
    expect_search(rsps, 9785995, 9785996)
    rsps.post(f"{BASE}/api/v4/leads/unsorted/forms", json=kommo("unsorted_created.json"))
    expect_note(rsps, lead_id=9786000)
    expect_task(rsps)
    deliver(without_deal_id())
    [form] = sent(rsps.calls[2])
    assert form["pipeline_id"] == 5597036 and form["source_name"] == "Calendly"
    contact = form["_embedded"]["contacts"][0]
    assert contact["name"] == "Lucía Fernández"
    assert contact["custom_fields_values"][0]["values"][0]["value"] == EMAIL
    link = KommoLink.objects.get()
    assert (link.lead_id, link.contact_id, link.match_method) == (9786000, 12117300, "inbound_lead")
    assert booking().crm_status == Booking.CrmStatus.INBOUND_LEAD


def test_no_contact_with_policy_review_waits_for_staff_and_writes_nothing(rsps, settings):
    settings.KOMMO_NO_DEAL_POLICY = "review"
    rsps.get(f"{BASE}/api/v4/contacts", status=204)
    status, event = deliver(without_deal_id())
    assert status == "done" and len(rsps.calls) == 1
    assert booking().crm_status == Booking.CrmStatus.NEEDS_REVIEW
    processing.replay(event, inline=True)
    assert len(rsps.calls) == 1  # an open review item is not searched again


def test_review_then_staff_assign_then_the_same_email_is_remembered(rsps, settings, django_user_model):
    settings.KOMMO_SEVERAL_DEALS_POLICY = "review"
    warm_users()
    expect_search(rsps, 9785993, 9785994)
    _, event = deliver(without_deal_id())
    link = KommoLink.objects.get()
    assert link.review_state == "open" and [c["id"] for c in link.candidates] == [9785993, 9785994]
    assert booking().crm_status == Booking.CrmStatus.NEEDS_REVIEW and len(rsps.calls) == 2

    ops = django_user_model.objects.create_user("ops")
    assign_deal(booking(), 9785993, ops)
    rsps.get(f"{BASE}/api/v4/leads/9785993", json=leads_body(9785993)["_embedded"]["leads"][0])
    expect_note(rsps)
    expect_task(rsps)
    processing.replay(event, inline=True)
    link.refresh_from_db()
    assert (link.lead_id, link.match_method, link.decided_by, link.review_state) == (9785993, "manual", ops, "resolved")
    assert booking().crm_status == Booking.CrmStatus.MATCHED
    rule = RememberedDeal.objects.get()
    assert (rule.email, rule.candidate_key, rule.lead_id) == (EMAIL, "9785993,9785994", 9785993)

    later = without_deal_id()
    later["payload"]["uri"] = later["payload"]["uri"].replace(LUCIA, "bbbbbbbb-4a3f-4e8b-8c1d-5f6a7b8c9d0e")
    expect_search(rsps, 9785993, 9785994)
    expect_note(rsps, note_id=76787999)
    expect_task(rsps, task_id=4745299)
    deliver(later)
    assert KommoLink.objects.get(task_id=4745299).match_method == "remembered"


def test_staff_skip_and_incoming_lead_decisions(rsps, settings, django_user_model):
    settings.KOMMO_NO_DEAL_POLICY = "review"
    rsps.get(f"{BASE}/api/v4/contacts", status=204)
    deliver(without_deal_id())
    ops = django_user_model.objects.create_user("ops")
    skip(booking(), ops)
    assert reconcile(booking()) == "skipped by staff" and len(rsps.calls) == 1
    create_inbound_lead_for(booking(), ops)
    warm_users()
    rsps.post(f"{BASE}/api/v4/leads/unsorted/forms", json=kommo("unsorted_created.json"))
    expect_note(rsps, lead_id=9786000)
    expect_task(rsps)
    assert "incoming lead 9786000 created" in reconcile(booking())


# --- lost answers -----------------------------------------------------------------------------------


def test_a_note_whose_answer_was_lost_is_adopted_not_duplicated(rsps):
    warm_users()
    expect_search(rsps, 9785993)
    rsps.post(NOTES, body=requests.ConnectionError("connection reset after sending"))
    status, event = deliver(without_deal_id())
    assert status == "failed" and "may have happened" in event.last_error
    link = KommoLink.objects.get()
    token = marker_token(booking().invitee_uri)
    assert list(link.pending_writes) == [f"booked:{token}@9785993"]

    listed = with_marker("notes_list.json", token, "notes")
    # The lost note was sent with the booking's join link (Calendly made the Zoom meeting).
    listed["_embedded"]["notes"][1]["params"]["text"] += f"\nJoin: {booking().conference_join_url}"
    rsps.get(NOTES, json=listed)
    expect_task(rsps)
    assert processing.process_event(event.pk, trigger="retry") == "done"
    link.refresh_from_db()
    assert link.note_ids == {f"booked:{token}@9785993": 76787983} and link.pending_writes == {}
    assert [m for m in methods(rsps) if m[0] == "POST" and m[1].endswith("/notes")] == [
        ("POST", "/api/v4/leads/9785993/notes")
    ]


def test_a_task_whose_answer_was_lost_is_adopted_not_duplicated(rsps):
    warm_users()
    expect_search(rsps, 9785993)
    expect_note(rsps)
    rsps.post(TASKS, status=504, body="")
    status, event = deliver(without_deal_id())
    assert status == "failed"
    token = marker_token(booking().invitee_uri)
    rsps.get(TASKS, json=with_marker("tasks_list.json", token, "tasks"))
    processing.process_event(event.pk, trigger="retry")
    assert KommoLink.objects.get().task_id == 4745251
    assert methods(rsps).count(("POST", "/api/v4/tasks")) == 1


def test_a_lost_write_that_never_landed_is_sent_again_after_looking(rsps):
    warm_users()
    expect_search(rsps, 9785993)
    rsps.post(NOTES, body=requests.ReadTimeout("read timeout"))
    _, event = deliver(without_deal_id())
    rsps.get(NOTES, json=kommo("notes_list.json"))  # only someone else's notes: ours is not there
    expect_note(rsps)
    expect_task(rsps)
    assert processing.process_event(event.pk) == "done"
    assert methods(rsps)[-3:] == [
        ("GET", "/api/v4/leads/9785993/notes"),
        ("POST", NOTES.removeprefix(BASE)),
        ("POST", "/api/v4/tasks"),
    ]


def test_a_refused_write_is_not_left_pending(rsps):
    warm_users()
    expect_search(rsps, 9785993)
    rsps.post(NOTES, status=400, json=kommo("error_400_validation.json"))
    status, event = deliver(without_deal_id())
    assert status == "failed" and event.needs_attention
    assert KommoLink.objects.get().pending_writes == {}


# --- cancel, reschedule, join link, no-show --------------------------------------------------------


def test_cancel_writes_a_note_and_completes_the_task(rsps):
    book_lucia(rsps)
    expect_note(rsps, note_id=76788000)
    rsps.patch(TASK, json=kommo("task_updated.json"))
    status, event = deliver("invitee_canceled.json")
    assert status == "done"
    assert methods(rsps, 4) == [("POST", "/api/v4/leads/9785993/notes"), ("PATCH", "/api/v4/tasks/4745251")]
    text = sent(rsps.calls[4])[0]["params"]["text"]
    assert "Cancelled by: Marta Ruiz (host)" in text and "Reason: Client asked to move the demo to January" in text
    assert sent(rsps.calls[5]) == {
        "is_completed": True,
        "result": {"text": "Cancelled in Calendly by Marta Ruiz: Client asked to move the demo to January"},
    }
    processing.replay(event, inline=True)
    assert len(rsps.calls) == 6


def test_cancel_that_arrives_before_its_create_ends_the_same(rsps):
    warm_users()
    data = calendly("invitee_canceled.json")
    data["payload"]["questions_and_answers"] = data["payload"]["questions_and_answers"][:2]
    expect_search(rsps, 9785993)
    expect_note(rsps)
    expect_task(rsps)
    expect_note(rsps, note_id=76788000)
    rsps.patch(TASK, json=kommo("task_updated.json"))
    deliver(data)
    status, _ = deliver(without_deal_id())
    assert status == "done" and len(rsps.calls) == 6  # the late create writes nothing
    link = KommoLink.objects.get()
    assert sorted(k.split(":")[0] for k in link.note_ids) == ["booked", "canceled"] and link.task_state["completed"]


def old_created():
    data = calendly("reschedule_1_invitee_canceled_old.json")
    p = data["payload"]
    data["event"] = "invitee.created"
    p.update(status="active", rescheduled=False, new_invitee=None, updated_at=p["created_at"])
    p.pop("cancellation", None)
    p["scheduled_event"].update(status="active", updated_at=p["created_at"])
    p["scheduled_event"].pop("cancellation", None)
    return data


JONAS = "jonas.weber@kunde.example"


def book_jonas(rsps):
    warm_users()
    expect_search(rsps, 9785993, email=JONAS)
    expect_note(rsps)
    expect_task(rsps)
    assert deliver(old_created())[0] == "done"
    assert len(rsps.calls) == 4


def expect_move(rsps):
    rsps.patch(TASK, json=kommo("task_updated.json"))
    expect_note(rsps, note_id=76788100)


def final_state():
    link = KommoLink.objects.get()
    return {
        "booking": link.booking.invitee_uri[-36:],
        "task": (link.task_id, link.task_state["complete_till"], link.task_state.get("completed")),
        "notes": sorted(k.split(":")[0] for k in link.note_ids),
        "statuses": sorted(Booking.objects.values_list("status", flat=True)),
    }


def test_reschedule_old_half_first(rsps):
    book_jonas(rsps)
    status, event = deliver("reschedule_1_invitee_canceled_old.json")
    assert status == "done" and len(rsps.calls) == 4  # nothing yet: the new booking is unknown
    assert event.processing_attempts.get().steps[-1]["detail"].startswith("rescheduled: waiting")
    expect_move(rsps)
    deliver("reschedule_2_invitee_created_new.json")
    assert methods(rsps, 4) == [("POST", "/api/v4/leads/9785993/notes"), ("PATCH", "/api/v4/tasks/4745251")]
    patch = sent(rsps.calls[5])
    assert patch["complete_till"] == 1796140800 and "[calsync:" in patch["text"]
    note = sent(rsps.calls[4])[0]["params"]["text"]
    assert "From: Friday, 27 November 2026, 11:00 (Europe/Berlin)" in note
    assert "To:   Tuesday, 1 December 2026, 17:00 (Europe/Berlin)" in note
    assert final_state() == {
        "booking": "7f1a4c8e-2d6b-4a9f-8e3c-6d5b4a3f2e1c",
        "task": (4745251, 1796140800, False),
        "notes": ["booked", "rescheduled"],
        "statuses": ["rescheduled", "scheduled"],
    }


def test_reschedule_new_half_first_ends_the_same(rsps):
    book_jonas(rsps)
    expect_move(rsps)
    deliver("reschedule_2_invitee_created_new.json")
    status, _ = deliver("reschedule_1_invitee_canceled_old.json")
    assert status == "done" and len(rsps.calls) == 6  # the late old half changes nothing
    assert final_state() == {
        "booking": "7f1a4c8e-2d6b-4a9f-8e3c-6d5b4a3f2e1c",
        "task": (4745251, 1796140800, False),
        "notes": ["booked", "rescheduled"],
        "statuses": ["rescheduled", "scheduled"],
    }
    assert KommoLink.objects.count() == 1  # never a second task for the chain


def test_cancel_after_a_reschedule_completes_the_one_task(rsps):
    book_jonas(rsps)
    expect_move(rsps)
    deliver("reschedule_2_invitee_created_new.json")
    cancel = calendly("reschedule_2_invitee_created_new.json")
    cancel["event"] = "invitee.canceled"
    cancel["payload"].update(
        status="canceled",
        updated_at="2026-11-30T09:00:00.000000Z",
        cancellation={"canceled_by": "Jonas Weber", "canceler_type": "invitee", "reason": "Budget frozen"},
    )
    expect_note(rsps, note_id=76788200)
    rsps.patch(TASK, json=kommo("task_updated.json"))
    deliver(cancel)
    assert methods(rsps, 6) == [("POST", "/api/v4/leads/9785993/notes"), ("PATCH", "/api/v4/tasks/4745251")]
    assert final_state()["task"] == (4745251, 1796140800, True)


def test_join_link_that_appears_later_gets_a_follow_up_note(rsps):
    book_jonas(rsps)  # custom location: no join link yet (calsync's Zoom step was down)
    assert "Join:" not in sent(rsps.calls[2])[0]["params"]["text"]
    old = Booking.objects.get()
    old.conference_join_url = "https://us06web.zoom.us/j/81234567890?pwd=abc&x=1"
    old.save()
    expect_note(rsps, note_id=76788300)
    rsps.patch(TASK, json=kommo("task_updated.json"))
    summary = reconcile(Booking.objects.get())
    assert "note 76788300" in summary and "task 4745251 updated" in summary
    assert methods(rsps, 4) == [("PATCH", "/api/v4/tasks/4745251"), ("POST", "/api/v4/leads/9785993/notes")]
    assert "Join: https://us06web.zoom.us/j/81234567890" in sent(rsps.calls[4])["text"]
    text = sent(rsps.calls[5])[0]["params"]["text"]
    assert "Join: https://us06web.zoom.us/j/81234567890?pwd=abc&x=1" in text
    assert reconcile(Booking.objects.get()) == "up to date" and len(rsps.calls) == 6


def no_show(kind, created_at, no_show_at=None):
    data = without_deal_id()
    data["event"] = kind
    data["created_at"] = created_at
    data["payload"]["no_show"] = (
        {"uri": "https://api.calendly.com/invitee_no_shows/5e1f0a2b", "created_at": no_show_at} if no_show_at else None
    )
    return data


def test_no_show_marked_then_undone_writes_a_note_each(rsps):
    book_lucia(rsps)
    expect_note(rsps, note_id=76788400)
    _, marked = deliver(
        no_show("invitee_no_show.created", "2026-12-02T15:41:00.000000Z", "2026-12-02T15:40:59.000000Z")
    )
    assert "marked as a no-show" in sent(rsps.calls[4])[0]["params"]["text"]
    expect_note(rsps, note_id=76788401)
    deliver(no_show("invitee_no_show.deleted", "2026-12-02T16:05:00.000000Z"))
    assert "no-show undone" in sent(rsps.calls[5])[0]["params"]["text"]
    processing.replay(marked, inline=True)
    assert len(rsps.calls) == 6
    assert not booking().is_no_show


def mark(created_at, no_show_at, no_show_uuid):
    data = no_show("invitee_no_show.created", created_at, no_show_at)
    data["payload"]["no_show"]["uri"] = f"https://api.calendly.com/invitee_no_shows/{no_show_uuid}"
    return data


def test_marked_undone_and_marked_again_writes_every_note(rsps):
    book_lucia(rsps)
    for note_id in (76788400, 76788401, 76788402, 76788403):
        expect_note(rsps, note_id=note_id)
    first = mark("2026-12-02T15:41:00.000000Z", "2026-12-02T15:40:59.000000Z", "5e1f0a2b")
    deliver(first)
    deliver(no_show("invitee_no_show.deleted", "2026-12-02T16:05:00.000000Z"))
    status, again = deliver(mark("2026-12-02T16:20:00.000000Z", "2026-12-02T16:19:58.000000Z", "7a3c9d4e"))
    assert status == "done" and not again.deliveries > 1  # a new mark, not a redelivery of the first
    assert booking().is_no_show
    deliver(no_show("invitee_no_show.deleted", "2026-12-02T16:30:00.000000Z"))
    texts = [sent(c)[0]["params"]["text"] for c in rsps.calls[4:]]
    assert ["no-show undone" in t for t in texts] == [False, True, False, True]
    assert all("marked as a no-show" in t for t in texts[::2])
    assert not booking().is_no_show
    # A redelivery of any of them is a duplicate, and processing one again writes nothing new.
    assert store_delivery(to_body(first)).outcome is Outcome.DUPLICATE
    processing.replay(again, inline=True)
    assert len(rsps.calls) == 8


def test_a_link_with_notes_from_before_per_mark_kinds_gets_no_second_note(rsps):
    book_lucia(rsps)
    expect_note(rsps, note_id=76788400)
    _, marked = deliver(mark("2026-12-02T15:41:00.000000Z", "2026-12-02T15:40:59.000000Z", "5e1f0a2b"))
    # As an older calsync recorded it: the plain kind, without the mark's moment.
    link = KommoLink.objects.get()
    token = marker_token(booking().invitee_uri)
    stamped = [k for k in link.note_ids if k.startswith("no_show-")]
    link.note_ids[f"no_show:{token}@9785993"] = link.note_ids.pop(stamped[0])
    link.save()
    processing.replay(marked, inline=True)
    assert len(rsps.calls) == 5


def test_no_show_undone_before_marked_writes_nothing(rsps):
    book_lucia(rsps)
    deliver(no_show("invitee_no_show.deleted", "2026-12-02T16:05:00.000000Z"))
    deliver(no_show("invitee_no_show.created", "2026-12-02T15:41:00.000000Z", "2026-12-02T15:40:59.000000Z"))
    assert len(rsps.calls) == 4 and not booking().is_no_show


def test_a_deployment_can_override_the_wording(rsps, settings, tmp_path):
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "note_booked.txt").write_text(
        'Reunión: {{ start_local|date:"j/m/Y H:i" }} con {{ booking.invitee_name }}'
    )
    settings.KOMMO_TEMPLATE_DIR = str(tmp_path)
    book_lucia(rsps)
    text = sent(rsps.calls[2])[0]["params"]["text"]
    assert text.startswith("Reunión: 2/12/2026 16:00 con Lucía Fernández\n[calsync:")


def test_a_wrong_policy_name_needs_attention_and_is_flagged_at_start_up(rsps, settings):
    from crm.checks import check_kommo_settings

    settings.KOMMO_SEVERAL_DEALS_POLICY = "newest"
    assert [p.id for p in check_kommo_settings(None)] == ["crm.E001"]
    status, event = deliver(without_deal_id())
    assert status == "failed" and event.needs_attention and "KOMMO_SEVERAL_DEALS_POLICY" in event.last_error


# --- lost answers across a reschedule and a late join link (found by the chaos test) -----------------


def test_a_lost_booked_note_of_the_old_booking_is_adopted_by_the_new_one_not_written_twice(rsps):
    warm_users()
    expect_search(rsps, 9785993, email=JONAS)
    rsps.post(NOTES, body=requests.ConnectionError("connection reset after sending"))
    status, _ = deliver(old_created())
    assert status == "failed"  # the booked note landed in Kommo, but we never heard back
    old_token = marker_token(Booking.objects.get().invitee_uri)
    deliver("reschedule_1_invitee_canceled_old.json")  # the old booking is rescheduled: it syncs no more

    rsps.get(NOTES, json=with_marker("notes_list.json", old_token, "notes"))
    expect_note(rsps, note_id=76788400)
    expect_task(rsps)
    status, _ = deliver("reschedule_2_invitee_created_new.json")
    assert status == "done"
    assert methods(rsps, 3) == [
        ("GET", "/api/v4/leads/9785993/notes"),  # looks for the lost note first: it is there
        ("POST", "/api/v4/leads/9785993/notes"),
        ("POST", "/api/v4/tasks"),
    ]
    assert "Calendly: meeting moved" in sent(rsps.calls[4])[0]["params"]["text"]  # not a second "booked"
    link = KommoLink.objects.get()
    assert sorted(k.split(":")[0] for k in link.note_ids) == ["booked", "rescheduled"]
    assert link.note_ids[f"booked:{old_token}@9785993"] == 76787983 and link.pending_writes == {}


def test_an_adopted_note_without_the_join_link_still_gets_the_join_link_note(rsps):
    book_url = "https://us06web.zoom.us/j/81234567890?pwd=abc"
    warm_users()
    expect_search(rsps, 9785993, email=JONAS)
    rsps.post(NOTES, body=requests.ConnectionError("connection reset after sending"))
    _, event = deliver(old_created())  # no join link yet (the Zoom step failed), and the answer is lost
    token = marker_token(Booking.objects.get().invitee_uri)
    Booking.objects.update(conference_join_url=book_url)  # the retry's Zoom step made the meeting

    rsps.get(NOTES, json=with_marker("notes_list.json", token, "notes"))  # the adopted note has no link
    expect_task(rsps)
    expect_note(rsps, note_id=76788500)
    assert processing.process_event(event.pk, trigger="retry") == "done"
    assert methods(rsps, 3) == [
        ("GET", "/api/v4/leads/9785993/notes"),
        ("POST", "/api/v4/tasks"),
        ("POST", "/api/v4/leads/9785993/notes"),
    ]
    assert f"Join: {book_url}" in sent(rsps.calls[5])[0]["params"]["text"]
    assert KommoLink.objects.get().join_url_noted == book_url


def test_a_task_adopted_after_a_reschedule_is_moved_to_the_new_time(rsps):
    warm_users()
    expect_search(rsps, 9785993, email=JONAS)
    expect_note(rsps)
    rsps.post(TASKS, body=requests.ConnectionError("connection reset after sending"))
    assert deliver(old_created())[0] == "failed"  # the task landed with the old time; its answer was lost
    marker = KommoLink.objects.get().marker
    deliver("reschedule_1_invitee_canceled_old.json")

    rsps.get(TASKS, json=with_marker("tasks_list.json", marker, "tasks"))
    expect_move(rsps)  # the "moved" note and the task PATCH
    assert deliver("reschedule_2_invitee_created_new.json")[0] == "done"
    assert methods(rsps, 4) == [
        ("POST", "/api/v4/leads/9785993/notes"),
        ("GET", "/api/v4/tasks"),
        ("PATCH", "/api/v4/tasks/4745251"),  # the adopted task gets the new time
    ]
    assert sent(rsps.calls[6])["complete_till"] == 1796140800
    assert final_state()["task"] == (4745251, 1796140800, False)


def test_a_stranger_naming_a_clients_deal_writes_nothing_and_waits_for_review(rsps):
    """The attack: someone with the public booking link types another client's Deal ID."""
    stranger = "stranger@evil.example"
    data = calendly("invitee_created.json", email=stranger, first_name="Mallory")
    rsps.get(f"{BASE}/api/v4/contacts", status=204)  # no contact has the stranger's e-mail
    rsps.get(
        f"{BASE}/api/v4/leads",
        json=leads_body(18734521),  # open, Lucía's contact
        match=[matchers.query_param_matcher({"filter[id][]": "18734521", "limit": "250", "with": "contacts"})],
    )
    status, _ = deliver(data)
    assert status == "done"
    assert [c.request.method for c in rsps.calls] == ["GET", "GET"]  # nothing written to Kommo
    link = KommoLink.objects.get()
    assert link.lead_id is None and link.review_state == KommoLink.ReviewState.OPEN
    assert link.match_reason.startswith("the Deal ID names a deal not linked to this invitee")
    assert [c["id"] for c in link.candidates] == [18734521]  # the named deal, for the person deciding
    assert booking().crm_status == Booking.CrmStatus.NEEDS_REVIEW
    processing.replay(link.booking.events.first(), inline=True)  # again: still waiting, no call at all
    assert len(rsps.calls) == 2


def test_a_deal_id_naming_the_invitees_closed_deal_writes_nothing(rsps):
    warm_users()
    expect_search_and_named(rsps, [9785993, 9785995], [9785995])
    data = without_deal_id()
    data["payload"]["tracking"]["utm_content"] = "deal-9785995"
    deliver(data)
    assert len(rsps.calls) == 2
    link = KommoLink.objects.get()
    assert link.review_state == KommoLink.ReviewState.OPEN and "closed" in link.match_reason


def test_the_booked_note_says_calendlys_conference_failed(rsps, settings):
    settings.ZOOM_ACCOUNT_ID, settings.ZOOM_CLIENT_ID, settings.ZOOM_CLIENT_SECRET = "acct", "client", "secret"
    warm_users()
    expect_search(rsps, 9785993)
    expect_note(rsps)
    expect_task(rsps)
    data = without_deal_id()
    data["payload"]["scheduled_event"]["location"] = {"type": "zoom_conference", "status": "failed", "join_url": None}
    status, _ = deliver(data)
    assert status == "done"
    text = sent(rsps.calls[2])[0]["params"]["text"]
    assert "Calendly could not create the zoom_conference conference: calsync is making its own Zoom meeting" in text
    # Once calsync's meeting exists, the note says where its link came from.
    from crm import notes

    meeting = booking()
    meeting.conference_join_url = "https://us06web.zoom.us/j/84849729157?pwd=x"
    text = notes.render("note_booked", notes.meeting_context(meeting, join_url=meeting.conference_join_url))
    assert "calsync made its own Zoom meeting instead.\nJoin: https://us06web.zoom.us/j/84849729157" in text
