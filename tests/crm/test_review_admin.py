"""The review queue in the admin: candidates with names, a decision, a typed deal checked live, permissions,
and the queue built for triage: times, urgency, who, why in words, filters, bulk skip."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from bookings.models import Booking
from crm.models import KommoLink, RememberedDeal, ReviewItem
from tests.crm.conftest import BASE, booking, deliver, kommo, leads_body, warm_users, without_deal_id
from tests.crm.test_sync import expect_note, expect_search, expect_task

pytestmark = pytest.mark.django_db

QUEUE = reverse("admin:crm_reviewitem_changelist")


@pytest.fixture
def review_item(rsps, settings) -> KommoLink:
    """Lucía has two open deals and the policy says: ask staff."""
    settings.KOMMO_SEVERAL_DEALS_POLICY = "review"
    warm_users()
    expect_search(rsps, 9785993, 9785994)
    deliver(without_deal_id())
    item = ReviewItem.objects.get()
    assert booking().crm_status == Booking.CrmStatus.NEEDS_REVIEW
    return item


@pytest.fixture
def sales_ops(client) -> User:
    user = User.objects.create_user("marta", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Sales ops"))
    client.force_login(user)
    return user


def review_url(item) -> str:
    return reverse("admin:crm_reviewitem_change", args=[item.pk])


def test_index_shows_how_many_wait(client, sales_ops, review_item):
    page = client.get(reverse("admin:index")).content.decode()
    assert "1 meeting waits for you to choose the Kommo deal" in page


def test_queue_lists_the_item_with_why(client, sales_ops, review_item):
    page = client.get(QUEUE).content.decode()
    assert "lucia.fernandez@clientco.example" in page and "has 2 open deals in Kommo" in page


def test_review_screen_shows_candidates_with_names(client, sales_ops, review_item, rsps):
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    page = client.get(review_url(review_item)).content.decode()
    for text in ("ClientCo — 25 seats", "ClientCo — onboarding", "Sales", "Demo scheduled", "Onboarding",
                 "Kick-off planned", f"{BASE}/leads/detail/9785993", "Why it needs you"):  # fmt: skip
        assert text in page, text
    assert "see in Kommo</a>" in page and ">open</a>" not in page  # a link label, not a deal status
    assert reverse("admin:bookings_booking_change", args=[review_item.booking_id]) in page  # to its booking


def test_picking_a_candidate_assigns_syncs_and_leaves_the_queue(
    client, sales_ops, review_item, rsps, django_capture_on_commit_callbacks
):
    rsps.get(f"{BASE}/api/v4/leads/9785993", json=leads_body(9785993)["_embedded"]["leads"][0])
    expect_note(rsps)
    expect_task(rsps)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(review_url(review_item), {"choice": "deal:9785993", "remember": "on"}, follow=True)
    assert "assigned to deal 9785993" in response.content.decode()
    link = KommoLink.objects.get()
    assert (link.lead_id, link.decided_by, link.review_state, link.task_id) == (9785993, sales_ops, "resolved", 4745251)
    assert booking().crm_status == Booking.CrmStatus.MATCHED
    assert ReviewItem.objects.count() == 0
    assert RememberedDeal.objects.get().created_by == sales_ops


def test_typed_deal_id_is_checked_live_then_saved(
    client, sales_ops, review_item, rsps, django_capture_on_commit_callbacks
):
    rsps.get(f"{BASE}/api/v4/leads/18734521", json=leads_body(18734521)["_embedded"]["leads"][0])
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    page = client.post(review_url(review_item), {"choice": "other", "deal_id": "18734521"}).content.decode()
    assert "Kommo has deal 18734521" in page and "ClientCo — enterprise" in page and "Negotiation" in page
    assert KommoLink.objects.get().lead_id is None  # not saved yet
    for _ in range(2):  # asked again when saving (the checked id comes from the browser), then by the sync
        rsps.get(f"{BASE}/api/v4/leads/18734521", json=leads_body(18734521)["_embedded"]["leads"][0])
    expect_note(rsps, lead_id=18734521)
    expect_task(rsps)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(review_url(review_item), {"choice": "other", "deal_id": "18734521", "checked_deal_id": "18734521"})
    assert KommoLink.objects.get().lead_id == 18734521


def test_unknown_typed_deal_is_refused_clearly(client, sales_ops, review_item, rsps):
    rsps.get(f"{BASE}/api/v4/leads/999", status=204)
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    page = client.post(review_url(review_item), {"choice": "other", "deal_id": "999"}).content.decode()
    assert "Kommo has no deal 999" in page
    assert KommoLink.objects.get().review_state == "open"


def test_a_forged_checked_deal_id_is_asked_about_again_before_saving(client, sales_ops, review_item, rsps):
    """A crafted POST claiming deal 5 was already checked used to save it without asking Kommo."""
    rsps.get(f"{BASE}/api/v4/leads/5", status=204)  # Kommo has no deal 5
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    page = client.post(review_url(review_item), {"choice": "other", "deal_id": "5", "checked_deal_id": "5"})
    assert page.status_code == 200 and "Kommo has no deal 5" in page.content.decode()
    link = KommoLink.objects.get()
    assert link.lead_id is None and link.review_state == "open"


def test_a_forged_confirmation_is_refused_while_kommo_cannot_be_asked(
    client, sales_ops, review_item, rsps, monkeypatch
):
    monkeypatch.setattr("crm.kommo_http.time.sleep", lambda seconds: None)  # the client's retry backoff
    rsps.get(f"{BASE}/api/v4/leads/5", status=503)  # every time
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    page = client.post(review_url(review_item), {"choice": "other", "deal_id": "5", "checked_deal_id": "5"})
    assert page.status_code == 200 and "Could not ask Kommo about deal 5" in page.content.decode()
    assert KommoLink.objects.get().lead_id is None


@pytest.mark.parametrize("deal_id", [str(2**63), str(10**30), "-5", "0"])
def test_an_out_of_range_deal_id_is_a_form_error(client, sales_ops, review_item, rsps, deal_id):
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))  # names for the page
    page = client.post(review_url(review_item), {"choice": "other", "deal_id": deal_id, "checked_deal_id": deal_id})
    assert page.status_code == 200
    assert 'id="deal-id-error"' in page.content.decode()
    link = KommoLink.objects.get()
    assert link.lead_id is None and link.review_state == "open"


def test_skip_decision(client, sales_ops, review_item, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(review_url(review_item), {"choice": "skip"})
    link = KommoLink.objects.get()
    assert (link.decision, link.decided_by) == ("skip", sales_ops)
    assert booking().crm_status == Booking.CrmStatus.SKIPPED


def test_user_outside_the_group_cannot_resolve(client, review_item):
    outsider = User.objects.create_user("intern", password="pw", is_staff=True)
    client.force_login(outsider)
    assert client.get(QUEUE).status_code == 403
    assert client.post(review_url(review_item), {"choice": "skip"}).status_code == 403
    assert KommoLink.objects.get().review_state == "open"


def test_sales_ops_group_has_exactly_what_the_work_needs():
    perms = set(Group.objects.get(name="Sales ops").permissions.values_list("content_type__app_label", "codename"))
    assert perms == {
        ("bookings", "view_webhookevent"), ("bookings", "view_processingattempt"), ("bookings", "view_booking"),
        ("bookings", "replay_webhookevent"), ("conferencing", "view_zoommeeting"), ("crm", "view_kommolink"),
        ("crm", "view_reviewitem"), ("crm", "resolve_reviewitem"), ("crm", "view_remembereddeal"),
        ("crm", "change_remembereddeal"),
    }  # fmt: skip
    assert not any(codename.startswith(("add_", "delete_")) for _, codename in perms)


def test_no_secret_on_any_screen(admin_client, review_item, rsps, settings):
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    for url in (QUEUE, review_url(review_item), reverse("admin:crm_kommolink_changelist"), reverse("admin:index")):
        page = admin_client.get(url).content.decode()
        assert settings.KOMMO_ACCESS_TOKEN not in page


# --- triage ---------------------------------------------------------------------------------------


def test_queue_says_how_long_it_waited_and_how_soon_the_meeting_is(client, sales_ops, review_item, test_clock):
    start = review_item.booking.start_at
    test_clock.move_to(start - timedelta(hours=5, minutes=1))
    KommoLink.objects.filter(pk=review_item.pk).update(updated_at=start - timedelta(hours=8, minutes=1))
    page = client.get(QUEUE).content.decode()
    assert "in 5 h" in page and "3 h" in page
    assert 'class="meeting-in soon" style="color:#c62828"' in page  # red: within a day
    test_clock.move_to(start - timedelta(days=3))
    warm_users()  # the clock moved past the cached list's hour
    page = client.get(QUEUE).content.decode()
    assert "in 3 days" in page and "meeting-in soon" not in page


def test_queue_shows_host_responsible_user_reason_in_words_and_a_link_to_the_booking(client, sales_ops, review_item):
    page = client.get(QUEUE).content.decode()
    assert "Marta Ruiz" in page  # the host
    assert "Lucía Fernández has 2 open deals in Kommo, and calsync cannot tell which one this meeting is for." in page
    assert reverse("admin:bookings_booking_change", args=[review_item.booking_id]) in page
    assert "1 meeting waits for a decision." in page and "Review queue</p>" not in page
    users = kommo("users.json")["_embedded"]["users"]
    responsible = {c["responsible_user_id"] for c in review_item.candidates}
    assert any(u["name"] in page for u in users if u["id"] in responsible)


def test_queue_is_sorted_by_urgency_and_filters_by_reason_host_and_date(client, sales_ops, review_item, rsps):
    later = Booking.objects.get()
    later.start_at += timedelta(days=10)
    later.save()
    expect_search(rsps, 9785993, 9785994)
    body = without_deal_id()
    body["payload"]["uri"] = body["payload"]["uri"].replace("invitees/", "invitees/second-")
    deliver(body)
    sooner = Booking.objects.exclude(pk=later.pk).get()
    assert sooner.start_at < later.start_at
    cl = client.get(QUEUE).context["cl"]
    assert [item.booking_id for item in cl.result_list] == [sooner.pk, later.pk]
    assert client.get(QUEUE, {"reason": "several"}).context["cl"].result_count == 2
    assert client.get(QUEUE, {"reason": "no_deal"}).context["cl"].result_count == 0
    assert client.get(QUEUE, {"host": "marta.ruiz@acme-sales.example"}).context["cl"].result_count == 2
    assert client.get(QUEUE, {"host": "x@acme-sales.example"}).context["cl"].result_count == 0
    span = {
        "booking__start_at__gte": (sooner.start_at - timedelta(hours=1)).isoformat(),
        "booking__start_at__lt": (sooner.start_at + timedelta(hours=1)).isoformat(),
    }
    assert client.get(QUEUE, span).context["cl"].result_count == 1


def test_bulk_skip(client, sales_ops, review_item, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(QUEUE, {"action": "skip_selected", "_selected_action": [review_item.pk]}, follow=True)
    assert "Skipped Lucía Fernández’s meeting: calsync writes nothing to Kommo for them." in response.content.decode()
    assert ReviewItem.objects.count() == 0
    assert Booking.objects.get().crm_status == Booking.CrmStatus.SKIPPED


def test_a_typed_id_without_the_option_ticked_is_checked_not_refused(client, sales_ops, review_item, rsps):
    rsps.get(f"{BASE}/api/v4/leads/9785993", json=leads_body(9785993)["_embedded"]["leads"][0])
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    page = client.post(review_url(review_item), {"deal_id": "9785993"}).content.decode()
    assert "This field is required" not in page
    assert "Kommo has deal 9785993" in page and 'value="Use this deal"' in page
    assert 'id="deal-warning"' not in page  # Lucía's own open deal
    assert 'getElementById("choice-other").checked = true' in page  # typing ticks the option


def test_a_closed_deal_or_one_not_the_invitees_is_warned_about_before_confirming(
    client, sales_ops, review_item, rsps, django_capture_on_commit_callbacks
):
    closed = leads_body(9785993)["_embedded"]["leads"][0] | {"status_id": 143}
    rsps.get(f"{BASE}/api/v4/leads/9785993", json=closed)
    rsps.get(f"{BASE}/api/v4/leads/pipelines", json=kommo("pipelines.json"))
    page = client.post(review_url(review_item), {"choice": "other", "deal_id": "9785993"}).content.decode()
    assert "Careful: the deal is closed (won or lost)." in page and 'value="Use this deal anyway"' in page
    assert KommoLink.objects.get().lead_id is None
    strangers = leads_body(18734521)["_embedded"]["leads"][0] | {"_embedded": {"contacts": [], "companies": []}}
    rsps.get(f"{BASE}/api/v4/leads/18734521", json=strangers)
    page = client.post(review_url(review_item), {"choice": "other", "deal_id": "18734521"}).content.decode()
    assert "Careful: no contact with the e-mail lucia.fernandez@clientco.example is linked to the deal" in page


def test_booking_search_finds_a_kommo_deal_id(admin_client, review_item):
    KommoLink.objects.update(lead_id=18734521)
    bookings = reverse("admin:bookings_booking_changelist")
    assert admin_client.get(bookings, {"q": "18734521"}).context["cl"].result_count == 1
    assert admin_client.get(bookings, {"q": "18734522"}).context["cl"].result_count == 0
    assert admin_client.get(bookings, {"q": "lucia"}).context["cl"].result_count == 1
