"""Which Kommo deal a booking belongs to. Pure: Kommo data in, a decision out (docs/crm.md).

Order: a Deal ID answered on the form → a deal id in the booking link's UTM → the open deals of the
contacts whose EMAIL equals the invitee's → a remembered manual choice for the same open deals →
one open deal wins; several or none go by policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crm.kommo import contact_lead_ids, is_open

MATCHED = "matched"
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
) -> DealChoice:
    """Decide. `contacts` are already filtered on the exact email; `leads` are their deals.

    `explicit_leads` maps id → deal for the explicit ids that exist in Kommo. `remembered_lead` is the
    deal staff picked before for this email, valid only while the open deals are `remembered_key`.
    """
    notes = []
    for item in explicit:
        what = "Deal ID answer" if item.source == "deal_id_answer" else "Deal ID in the booking link"
        lead = explicit_leads.get(item.lead_id) if item.lead_id is not None else None
        if lead is not None and not lead.get("is_deleted"):
            closed = "" if is_open(lead) else " (a closed deal)"
            return DealChoice(
                MATCHED,
                item.source,
                int(lead["id"]),
                _contact_of(int(lead["id"]), contacts) or _first_contact_of_lead(lead),
                f"{what} {item.raw!r} names deal {lead['id']}{closed}",
                [describe(lead)],
                responsible_user_id=lead.get("responsible_user_id"),
            )
        notes.append(f"{what} {item.raw!r} is not a deal in Kommo")
    prefix = "; ".join(notes) + "; " if notes else ""

    if not contacts:
        return _nothing_found(policy, f"{prefix}no Kommo contact has this email", None, [])
    wanted_ids = {i for c in contacts for i in contact_lead_ids(c)}
    mine = [lead for lead in leads if int(lead["id"]) in wanted_ids]
    candidates_open = sorted(open_leads(mine, policy.pipeline_ids), key=lambda x: int(x["id"]))
    candidates = [describe(lead) for lead in candidates_open]
    first_contact = int(contacts[0]["id"])

    if remembered_lead is not None and remembered_key == ",".join(str(c["id"]) for c in candidates):
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


def _first_contact_of_lead(lead: dict) -> int | None:
    contacts = (lead.get("_embedded") or {}).get("contacts") or []
    main = [c for c in contacts if c.get("is_main")] or contacts
    return int(main[0]["id"]) if main else None
