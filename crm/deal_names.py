"""Names for ids on the review screen: deal links, pipelines, stages and users, looked up in Kommo.

Everything here is for people to read; a Kommo outage degrades to showing ids, never to an error page.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings

from calsync.errors import SyncError
from crm.client import kommo_client
from crm.kommo import KommoClient
from crm.matching import why_deal_is_not_the_invitees

logger = logging.getLogger(__name__)


def deal_url(lead_id: int | None) -> str:
    base = settings.KOMMO_BASE_URL.rstrip("/")
    return f"{base}/leads/detail/{lead_id}" if base and lead_id else ""


def _names(client: KommoClient) -> tuple[dict[int, str], dict[tuple[int, int], str], dict[int, str]]:
    pipelines: dict[int, str] = {}
    stages: dict[tuple[int, int], str] = {}
    users: dict[int, str] = {}
    try:
        for pipeline in client.get_pipelines():
            pipelines[int(pipeline["id"])] = pipeline.get("name") or str(pipeline["id"])
            for status in (pipeline.get("_embedded") or {}).get("statuses") or []:
                stages[(int(pipeline["id"]), int(status["id"]))] = status.get("name") or str(status["id"])
        users = {int(u["id"]): u.get("name") or u.get("email") or str(u["id"]) for u in client.get_users()}
    except (SyncError, KeyError, TypeError, ValueError) as exc:
        logger.warning("kommo: names for the review screen unavailable: %s", exc)
    return pipelines, stages, users


def describe_deals(deals: list[dict], client: KommoClient | None = None) -> list[dict]:
    """Candidate deals (as stored on KommoLink, or as Kommo returns leads) with readable names and a link."""
    if not deals:
        return []
    pipelines, stages, users = _names(client or kommo_client())
    described = []
    for deal in deals:
        pipeline_id, status_id = deal.get("pipeline_id"), deal.get("status_id")
        updated = deal.get("updated_at")
        if isinstance(updated, (int, float)):
            updated = datetime.fromtimestamp(updated, tz=UTC)
        user_id = deal.get("responsible_user_id")
        described.append(
            {
                "id": deal.get("id"),
                "name": deal.get("name") or f"Deal {deal.get('id')}",
                "pipeline": pipelines.get(pipeline_id, str(pipeline_id or "—")),
                "stage": stages.get(
                    (pipeline_id, status_id),
                    {142: "Closed – won", 143: "Closed – lost"}.get(status_id, str(status_id or "—")),
                ),
                "responsible": users.get(user_id, str(user_id or "—")),
                "updated_at": updated,
                "url": deal_url(deal.get("id")),
            }
        )
    return described


def check_deal(lead_id: int, client: KommoClient | None = None) -> dict | None:
    """The deal as Kommo has it now, described for people; None if Kommo has no such deal."""
    client = client or kommo_client()
    lead = client.get_lead(lead_id)
    return describe_deals([lead], client)[0] if lead else None


def check_typed_deal(lead_id: int, email: str, client: KommoClient | None = None) -> dict | None:
    """A deal id staff typed, as Kommo has it now (None: no such deal), with `warning`: why it may not be the
    invitee's deal, by the same rule the sync uses for a Deal ID answered on the booking form (or "")."""
    client = client or kommo_client()
    lead = client.get_lead(lead_id)
    if not lead:
        return None
    deal = describe_deals([lead], client)[0]
    try:
        contacts = client.find_contacts_by_email(email) if email else []
        problem = why_deal_is_not_the_invitees(lead, contacts, email)
    except SyncError as exc:
        logger.warning("kommo: could not check whose deal %s is: %s", lead_id, exc)
        problem = "calsync could not ask Kommo whose deal it is"
    deal["warning"] = problem or ""
    return deal
