"""Which Kommo deal a booking belongs to. Pure: Kommo data in, a decision out (docs/crm.md).

Order: a Deal ID answered on the form → a deal id in the booking link's UTM → the open deals of the
contacts whose EMAIL equals the invitee's → a remembered manual choice for the same open deals →
one open deal wins; several or none go by policy.

Anyone with the public booking link can type any Deal ID, so a named deal is used only when it is open
and belongs to the invitee (`deal_belongs_to_invitee`); a deal that exists but does not goes to review.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crm.kommo import contact_emails, contact_lead_ids, is_open

MATCHED = "matched"
NOT_THE_INVITEES_DEAL = "the Deal ID names a deal not linked to this invitee"
REVIEW = "review"
INBOUND_LEAD = "inbound_lead"

SEVERAL_POLICIES = ("most_recent", "review")
NONE_POLICIES = ("inbound_lead", "review")

_KOMMO_LEAD_URL = re.compile(r"/leads/detail/(\d{1,15})")
_DIGITS = re.compile(r"#?\s*(\d{1,15})")


@dataclass(frozen=True)
class MatchPolicy:
    several: str = "most_recent"
    none: str = "inbound_lead"
    pipeline_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.several not in SEVERAL_POLICIES:
            raise ValueError(f"KOMMO_SEVERAL_DEALS_POLICY must be one of {SEVERAL_POLICIES}, not {self.several!r}")
        if self.none not in NONE_POLICIES:
            raise ValueError(f"KOMMO_NO_DEAL_POLICY must be one of {NONE_POLICIES}, not {self.none!r}")


@dataclass(frozen=True)
class ExplicitDealId:
    """A deal id the booking itself names: `source` is `deal_id_answer` or `deal_id_utm`."""

    source: str
    raw: str
    lead_id: int | None  # None when `raw` is not a usable id


@dataclass(frozen=True)
class DealChoice:
    outcome: str  # matched | review | inbound_lead
    method: str  # a KommoLink.MatchMethod value, or "" when nothing was chosen
    lead_id: int | None
    contact_id: int | None
    reason: str
    candidates: list[dict] = field(default_factory=list)
    extra_note_lead_ids: tuple[int, ...] = ()
    responsible_user_id: int | None = None


def candidate_key(lead_ids) -> str:
    """The set of open deals a remembered choice was made among (`RememberedDeal.candidate_key`)."""
    return ",".join(str(i) for i in sorted({int(i) for i in lead_ids}))


def parse_deal_id(text: str | None) -> int | None:
    """A deal id from free text: "18734521", "#18734521" or a Kommo deal URL."""
    if not text:
        return None
    text = text.strip()
    url = _KOMMO_LEAD_URL.search(text)
    if url:
        return int(url.group(1))
    digits = _DIGITS.fullmatch(text)
    return int(digits.group(1)) if digits else None


def deal_id_from_tracking(tracking: Mapping[str, str], field_name: str, prefix: str) -> ExplicitDealId | None:
    value = (tracking or {}).get(field_name) or ""
    if not value.lower().startswith(prefix.lower()):
        return None
    rest = value[len(prefix) :]
    return ExplicitDealId("deal_id_utm", value, int(rest) if rest.isdigit() else None)


def describe(lead: dict) -> dict:
    """The fields of a deal the review screen shows."""
    return {
        "id": int(lead["id"]),
        "name": lead.get("name") or "",
        "pipeline_id": lead.get("pipeline_id"),
        "status_id": lead.get("status_id"),
        "responsible_user_id": lead.get("responsible_user_id"),
        "updated_at": lead.get("updated_at"),
    }


def open_leads(leads: Sequence[dict], pipeline_ids: frozenset[int] = frozenset()) -> list[dict]:
    return [lead for lead in leads if is_open(lead) and (not pipeline_ids or lead.get("pipeline_id") in pipeline_ids)]


def _contact_of(lead_id: int, contacts: Sequence[dict]) -> int | None:
    for contact in contacts:
        if lead_id in contact_lead_ids(contact):
            return int(contact["id"])
    return int(contacts[0]["id"]) if contacts else None


def _embedded_ids(entity: dict, key: str) -> set[int]:
    return {int(item["id"]) for item in (entity.get("_embedded") or {}).get(key) or [] if "id" in item}


def _contacts_with_email(contacts: Sequence[dict], email: str) -> list[dict]:
    wanted = email.strip().lower()
    return [c for c in contacts if not c.get("is_deleted") and wanted and wanted in contact_emails(c)]


def invitee_contact_for_deal(lead: dict, contacts: Sequence[dict], email: str) -> int | None:
    """The id of a contact with the invitee's e-mail that the deal is linked to, directly or through the
    contact's company; None when there is none.

    A link shows from either side: the contact's `_embedded.leads` (`with=leads`), the deal's
    `_embedded.contacts` (`with=contacts`), or a company both carry in `_embedded.companies`.
    """
    lead_id = int(lead["id"])
    mine = _contacts_with_email(contacts, email)
    lead_contacts = _embedded_ids(lead, "contacts")
    for contact in mine:
        if lead_id in contact_lead_ids(contact) or int(contact["id"]) in lead_contacts:
            return int(contact["id"])
    lead_companies = _embedded_ids(lead, "companies")
    for contact in mine:
        if lead_companies & _embedded_ids(contact, "companies"):
            return int(contact["id"])
    return None


def why_deal_is_not_the_invitees(lead: dict, contacts: Sequence[dict], email: str) -> str | None:
    """Why a Deal ID the booking names may not be used (None: it may). `contacts` may be raw search results."""
    if lead.get("is_deleted"):
        return "the deal is deleted"
    if not is_open(lead):
        return "the deal is closed (won or lost)"
    if invitee_contact_for_deal(lead, contacts, email) is None:
        return f"no contact with the e-mail {email.strip().lower()} is linked to the deal, nor that contact's company"
    return None


def deal_belongs_to_invitee(lead: dict, contacts: Sequence[dict], email: str) -> bool:
    """The rule for honouring a Deal ID: the deal is open and linked to a contact with the invitee's e-mail
    (or to that contact's company). `lead` as `GET /leads?with=contacts` gives it, `contacts` as the e-mail
    search (`with=leads`) gives them; contacts without that e-mail are ignored."""
    return why_deal_is_not_the_invitees(lead, contacts, email) is None


def _nothing_found(policy: MatchPolicy, reason: str, contact_id: int | None, candidates: list[dict]) -> DealChoice:
    if policy.none == "inbound_lead":
        return DealChoice(INBOUND_LEAD, "inbound_lead", None, contact_id, f"{reason}: new incoming lead", candidates)
    return DealChoice(REVIEW, "", None, contact_id, f"{reason}: needs review", candidates)


def choose_deal(
    *,
    explicit: Sequence[ExplicitDealId],
    explicit_leads: Mapping[int, dict],
    contacts: Sequence[dict],
    leads: Sequence[dict],
    policy: MatchPolicy,
    remembered_lead: dict | None = None,
    remembered_key: str | None = None,
    email: str,
) -> DealChoice:
    """Decide. `contacts` are already filtered on the exact email; `leads` are their deals.

    `explicit_leads` maps id → deal for the explicit ids that exist in Kommo. `remembered_lead` is the
    deal staff picked before for this email, valid only while the open deals are `remembered_key`.
    `email` is the invitee's: a named deal is used only if `deal_belongs_to_invitee`.
    """
    notes = []
    refused: list[tuple[ExplicitDealId, dict, str]] = []
    for item in explicit:
        what = "Deal ID answer" if item.source == "deal_id_answer" else "Deal ID in the booking link"
        lead = explicit_leads.get(item.lead_id) if item.lead_id is not None else None
        if lead is not None and not lead.get("is_deleted"):
            problem = why_deal_is_not_the_invitees(lead, contacts, email)
            if problem is None:
                return DealChoice(
                    MATCHED,
                    item.source,
                    int(lead["id"]),
                    invitee_contact_for_deal(lead, contacts, email),
                    f"{what} {item.raw!r} names deal {lead['id']}, linked to this invitee",
                    [describe(lead)],
                    responsible_user_id=lead.get("responsible_user_id"),
                )
            refused.append((item, lead, f"{what} {item.raw!r} names deal {lead['id']}: {problem}"))
            continue
        notes.append(f"{what} {item.raw!r} is not a deal in Kommo")
    if refused:
        # Someone named a deal that is not theirs (or no longer open): a person decides, nothing is written.
        named = [describe(lead) for _, lead, _ in refused]
        details = "; ".join(reason for _, _, reason in refused)
        return DealChoice(
            REVIEW,
            "",
            None,
            int(contacts[0]["id"]) if contacts else None,
            f"{NOT_THE_INVITEES_DEAL} ({details}): needs review",
            named,
        )
    prefix = "; ".join(notes) + "; " if notes else ""

    if not contacts:
        return _nothing_found(policy, f"{prefix}no Kommo contact has this email", None, [])
    wanted_ids = {i for c in contacts for i in contact_lead_ids(c)}
    mine = [lead for lead in leads if int(lead["id"]) in wanted_ids]
    candidates_open = sorted(open_leads(mine, policy.pipeline_ids), key=lambda x: int(x["id"]))
    candidates = [describe(lead) for lead in candidates_open]
    first_contact = int(contacts[0]["id"])

    if remembered_lead is not None and remembered_key == candidate_key(c["id"] for c in candidates):
        lead_id = int(remembered_lead["id"])
        return DealChoice(
            MATCHED,
            "remembered",
            lead_id,
            _contact_of(lead_id, contacts),
            f"{prefix}staff chose deal {lead_id} before for this email and these open deals",
            candidates,
            responsible_user_id=remembered_lead.get("responsible_user_id"),
        )
    if not candidates_open:
        closed = len(mine)
        what = f"the contact has only closed deals ({closed})" if closed else "the contact has no deals"
        if policy.pipeline_ids and any(is_open(lead) for lead in mine):
            what = "the contact has no open deal in the configured pipelines"
        return _nothing_found(policy, prefix + what, first_contact, candidates)
    if len(candidates_open) == 1:
        lead = candidates_open[0]
        return DealChoice(
            MATCHED,
            "single_open_deal",
            int(lead["id"]),
            _contact_of(int(lead["id"]), contacts),
            f"{prefix}the contact's only open deal",
            candidates,
            responsible_user_id=lead.get("responsible_user_id"),
        )
    if policy.several == "review":
        return DealChoice(
            REVIEW, "", None, first_contact, f"{prefix}{len(candidates_open)} open deals: needs review", candidates
        )
    newest = max(candidates_open, key=lambda x: (x.get("updated_at") or 0, int(x["id"])))
    others = tuple(int(x["id"]) for x in candidates_open if x is not newest)
    return DealChoice(
        MATCHED,
        "most_recent",
        int(newest["id"]),
        _contact_of(int(newest["id"]), contacts),
        f"{prefix}{len(candidates_open)} open deals: the most recently updated one (notes go to all)",
        candidates,
        extra_note_lead_ids=others,
        responsible_user_id=newest.get("responsible_user_id"),
    )
