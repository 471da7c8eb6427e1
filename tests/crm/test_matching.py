"""choose_deal: pure decisions from Kommo-shaped data (no database, no HTTP)."""

import pytest

from crm.matching import (
    ExplicitDealId,
    MatchPolicy,
    choose_deal,
    deal_id_from_tracking,
    parse_deal_id,
)
from tests.crm.conftest import EMAIL, contacts_body, leads_body

ALL = (9785993, 9785994, 9785995, 9785996)


def decide(*, lead_ids=(9785993,), contacts=None, explicit=(), explicit_leads=None, policy=None, **kw):
    if contacts is None:
        contacts = contacts_body(*lead_ids)["_embedded"]["contacts"]
    return choose_deal(
        explicit=list(explicit),
        explicit_leads=explicit_leads or {},
        contacts=contacts,
        leads=leads_body(*lead_ids)["_embedded"]["leads"],
        policy=policy or MatchPolicy(),
        **{"email": EMAIL, **kw},
    )


def test_single_open_deal():
    choice = decide(lead_ids=(9785993, 9785995, 9785996))  # one open, one won, one lost
    assert (choice.outcome, choice.method, choice.lead_id, choice.contact_id) == (
        "matched",
        "single_open_deal",
        9785993,
        12117258,
    )
    assert [c["id"] for c in choice.candidates] == [9785993]
    assert choice.responsible_user_id == 504141


def test_several_open_deals_most_recent_takes_the_newest_and_notes_go_to_all():
    choice = decide(lead_ids=(9785993, 9785994, 9785995))
    assert (choice.outcome, choice.method, choice.lead_id) == ("matched", "most_recent", 9785994)
    assert choice.extra_note_lead_ids == (9785993,)
    assert [c["id"] for c in choice.candidates] == [9785993, 9785994]


def test_several_open_deals_review():
    choice = decide(lead_ids=(9785993, 9785994), policy=MatchPolicy(several="review"))
    assert (choice.outcome, choice.lead_id) == ("review", None)
    assert choice.candidates[1] == {
        "id": 9785994,
        "name": "ClientCo — onboarding",
        "pipeline_id": 5597040,
        "status_id": 49366086,
        "responsible_user_id": 504142,
        "updated_at": 1763900000,
    }
    assert "2 open deals" in choice.reason


def test_pipeline_allow_list_limits_the_candidates():
    choice = decide(lead_ids=(9785993, 9785994), policy=MatchPolicy(pipeline_ids=frozenset({5597040})))
    assert (choice.method, choice.lead_id) == ("single_open_deal", 9785994)


@pytest.mark.parametrize(("none", "outcome"), [("inbound_lead", "inbound_lead"), ("review", "review")])
def test_only_closed_deals_follow_the_none_policy(none, outcome):
    choice = decide(lead_ids=(9785995, 9785996), policy=MatchPolicy(none=none))
    assert (choice.outcome, choice.lead_id, choice.contact_id) == (outcome, None, 12117258)
    assert "only closed deals (2)" in choice.reason


@pytest.mark.parametrize(("none", "outcome"), [("inbound_lead", "inbound_lead"), ("review", "review")])
def test_no_contact_follows_the_none_policy(none, outcome):
    choice = decide(lead_ids=(), contacts=[], policy=MatchPolicy(none=none))
    assert (choice.outcome, choice.lead_id, choice.contact_id) == (outcome, None, None)
    assert "no Kommo contact has this email" in choice.reason


def test_deal_id_answer_wins_when_the_deal_exists():
    lead = leads_body(18734521)["_embedded"]["leads"][0]
    choice = decide(
        lead_ids=(9785993,),
        explicit=[ExplicitDealId("deal_id_answer", "18734521", 18734521)],
        explicit_leads={18734521: lead},
    )
    assert (choice.method, choice.lead_id, choice.contact_id) == ("deal_id_answer", 18734521, 12117258)


def test_unknown_deal_id_answer_falls_back_to_the_email_and_says_so():
    choice = decide(explicit=[ExplicitDealId("deal_id_answer", "999", 999)], explicit_leads={})
    assert (choice.method, choice.lead_id) == ("single_open_deal", 9785993)
    assert "Deal ID answer '999' is not a deal in Kommo" in choice.reason


def test_answer_beats_utm_and_utm_is_used_when_the_answer_is_unknown():
    lead = leads_body(9785994)["_embedded"]["leads"][0]
    explicit = [ExplicitDealId("deal_id_answer", "12", 12), ExplicitDealId("deal_id_utm", "deal-9785994", 9785994)]
    choice = decide(lead_ids=(9785993, 9785994), explicit=explicit, explicit_leads={9785994: lead})
    assert (choice.method, choice.lead_id) == ("deal_id_utm", 9785994)


def test_remembered_assignment_applies_only_to_the_same_open_deals():
    remembered = leads_body(9785993)["_embedded"]["leads"][0]
    same = decide(lead_ids=(9785993, 9785994), remembered_lead=remembered, remembered_key="9785993,9785994")
    assert (same.method, same.lead_id) == ("remembered", 9785993)
    changed = decide(lead_ids=(9785993, 9785994), remembered_lead=remembered, remembered_key="9785993")
    assert changed.method == "most_recent"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18734521", 18734521),
        (" #18734521 ", 18734521),
        ("https://acme.kommo.com/leads/detail/18734521", 18734521),
        ("I don't know", None),
        ("12 and 13", None),
        ("", None),
    ],
)
def test_parse_deal_id(text, expected):
    assert parse_deal_id(text) == expected


def test_deal_id_from_tracking():
    assert deal_id_from_tracking({"utm_content": "deal-9785994"}, "utm_content", "deal-").lead_id == 9785994
    assert deal_id_from_tracking({"utm_content": "deal-x"}, "utm_content", "deal-").lead_id is None
    assert deal_id_from_tracking({"utm_content": "spring"}, "utm_content", "deal-") is None
    assert deal_id_from_tracking({}, "utm_content", "deal-") is None


def test_bad_policy_names_are_refused_clearly():
    with pytest.raises(ValueError, match="KOMMO_SEVERAL_DEALS_POLICY"):
        MatchPolicy(several="newest")


# --- a Deal ID is honoured only for the invitee's own open deal -----------------------------------------


def _lead(lead_id: int, **changes) -> dict:
    lead = dict(leads_body(lead_id)["_embedded"]["leads"][0])
    return {**lead, **changes}


def _contact(contact_id: int, *lead_ids: int, email: str = EMAIL, companies=()) -> dict:
    contact = contacts_body(*lead_ids, email=email)["_embedded"]["contacts"][0]
    contact["id"] = contact_id
    contact["_embedded"]["companies"] = [{"id": c} for c in companies]
    return contact


def test_deal_belongs_to_invitee_through_either_side_of_the_link_or_the_company():
    from crm.matching import deal_belongs_to_invitee

    mine = _contact(1, 9785993, companies=[777])
    assert deal_belongs_to_invitee(_lead(9785993), [mine], EMAIL)  # the contact lists the deal
    assert deal_belongs_to_invitee(_lead(18734521), [_contact(12117258)], EMAIL)  # the deal lists the contact
    company_deal = _lead(9785994, _embedded={"companies": [{"id": 777}]})
    assert deal_belongs_to_invitee(company_deal, [mine], EMAIL.upper())  # the contact's company's deal


def test_deal_does_not_belong_to_a_stranger_nor_when_closed():
    from crm.matching import deal_belongs_to_invitee

    lucia = _contact(12117258, 9785993, 9785995)
    assert not deal_belongs_to_invitee(_lead(9785993), [lucia], "stranger@evil.example")
    assert not deal_belongs_to_invitee(_lead(9785993), [], EMAIL)
    # Search results are fuzzy: a contact without the e-mail in its EMAIL field does not count.
    assert not deal_belongs_to_invitee(_lead(9785993), [_contact(5, 9785993, email="other@x.example")], EMAIL)
    assert not deal_belongs_to_invitee(_lead(9785995), [lucia], EMAIL)  # won: closed
    assert not deal_belongs_to_invitee(_lead(9785993, is_deleted=True), [lucia], EMAIL)
    other_company = _lead(9785994, _embedded={"companies": [{"id": 778}]})
    assert not deal_belongs_to_invitee(other_company, [_contact(1, companies=[777])], EMAIL)


def test_a_deal_id_naming_someone_elses_deal_goes_to_review_with_the_deal_shown():
    foreign = _lead(9785994)  # open, but linked to no contact with the invitee's e-mail
    choice = decide(
        lead_ids=(9785993,),
        explicit=[ExplicitDealId("deal_id_answer", "9785994", 9785994)],
        explicit_leads={9785994: foreign},
    )
    assert (choice.outcome, choice.lead_id) == ("review", None)
    assert choice.reason.startswith("the Deal ID names a deal not linked to this invitee")
    assert "no contact with the e-mail" in choice.reason
    assert [c["id"] for c in choice.candidates] == [9785994]


def test_a_deal_id_naming_the_invitees_closed_deal_goes_to_review():
    choice = decide(
        lead_ids=(9785993, 9785995),
        explicit=[ExplicitDealId("deal_id_utm", "deal-9785995", 9785995)],
        explicit_leads={9785995: _lead(9785995)},
    )
    assert choice.outcome == "review" and "closed" in choice.reason
    assert "the Deal ID names a deal not linked to this invitee" in choice.reason


def test_several_contacts_share_the_email_and_the_deal_id_picks_one_of_their_deals():
    contacts = [_contact(1, 9785993), _contact(2, 9785994)]
    without = decide(lead_ids=(9785993, 9785994), contacts=contacts, policy=MatchPolicy(several="review"))
    assert without.outcome == "review"
    choice = decide(
        lead_ids=(9785993, 9785994),
        contacts=contacts,
        policy=MatchPolicy(several="review"),
        explicit=[ExplicitDealId("deal_id_answer", "9785994", 9785994)],
        explicit_leads={9785994: _lead(9785994)},
    )
    assert (choice.outcome, choice.method, choice.lead_id, choice.contact_id) == (
        "matched",
        "deal_id_answer",
        9785994,
        2,
    )
