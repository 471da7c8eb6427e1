"""A thin client for Kommo API v4: the calls calsync needs, and the helpers that read Kommo's answers.

`KommoClient` is one method per call (contacts, leads, users, notes, tasks, incoming leads); how each call
is sent, retried and decoded (the shared rate limit, typed errors, never re-sending a POST) is its base,
`KommoTransport` in `crm/kommo_http.py`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from crm.errors import (  # re-exported: callers catch them from here
    KommoAuthError,
    KommoError,
    KommoForbidden,
    KommoIPBlocked,
    KommoNotFound,
    KommoPaymentRequired,
    KommoPermanentError,
    KommoRateLimited,
    KommoServerError,
    KommoUncertainWrite,
    KommoValidationError,
)
from crm.kommo_http import PAGE_LIMIT, KommoTransport
from crm.tokens import StaticToken, TokenProvider  # re-exported

logger = logging.getLogger(__name__)

__all__ = [
    "KommoAuthError",
    "KommoClient",
    "KommoError",
    "KommoForbidden",
    "KommoIPBlocked",
    "KommoNotFound",
    "KommoPaymentRequired",
    "KommoPermanentError",
    "KommoRateLimited",
    "KommoServerError",
    "KommoUncertainWrite",
    "KommoValidationError",
    "StaticToken",
    "TokenProvider",
]

WON_STATUS_ID = 142
LOST_STATUS_ID = 143


# --- helpers ---------------------------------------------------------------------------------------


def contact_emails(contact: dict) -> list[str]:
    """The values of the contact's EMAIL field, trimmed and lower-cased."""
    found = []
    for field in contact.get("custom_fields_values") or []:
        if field.get("field_code") == "EMAIL":
            for value in field.get("values") or []:
                if isinstance(value.get("value"), str):
                    found.append(value["value"].strip().lower())
    return found


def contact_lead_ids(contact: dict) -> list[int]:
    return [int(lead["id"]) for lead in (contact.get("_embedded") or {}).get("leads") or [] if "id" in lead]


def is_open(lead: dict) -> bool:
    return lead.get("status_id") not in (WON_STATUS_ID, LOST_STATUS_ID) and not lead.get("is_deleted")


def users_cache_key(base_url: str) -> str:
    return "crm:kommo:users:" + hashlib.sha1(base_url.rstrip("/").encode(), usedforsecurity=False).hexdigest()[:12]


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the client ------------------------------------------------------------------------------------


class KommoClient(KommoTransport):
    """Kommo API v4, one method per call calsync makes (its constructor: `KommoTransport`)."""

    # --- contacts, leads, users ----------------------------------------------------------------

    def find_contacts_by_email(self, email: str) -> list[dict]:
        """Contacts whose EMAIL field equals `email` (Kommo's `query` is fuzzy: we filter exactly)."""
        wanted = email.strip().lower()
        body = self._request("GET", "/api/v4/contacts", params={"query": wanted, "with": "leads", "limit": 50})
        contacts = ((body or {}).get("_embedded") or {}).get("contacts") or []
        return [c for c in contacts if not c.get("is_deleted") and wanted in contact_emails(c)]

    def get_leads(self, ids: Iterable[int], *, with_contacts: bool = False) -> list[dict]:
        unique = sorted({int(i) for i in ids})
        leads: list[dict] = []
        for chunk in _chunks(unique, PAGE_LIMIT):
            params: dict[str, Any] = {"filter[id][]": list(chunk), "limit": PAGE_LIMIT}
            if with_contacts:
                params["with"] = "contacts"
            body = self._request("GET", "/api/v4/leads", params=params)
            leads.extend(((body or {}).get("_embedded") or {}).get("leads") or [])
        return leads

    def get_lead(self, lead_id: int) -> dict | None:
        try:
            return self._request("GET", f"/api/v4/leads/{int(lead_id)}")
        except KommoNotFound:
            return None

    def get_users(self) -> list[dict]:
        """All users (admin token). Cached in the shared cache: one call per account per hour, not per booking."""
        key = users_cache_key(self.base_url)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        try:
            users = self._get_all("/api/v4/users", {}, "users")
        except KommoForbidden:
            # Only admins may list users: without that right, tasks go to the deal's responsible user.
            logger.warning("kommo: the token may not list users; tasks go to each deal's responsible user")
            users = []
        if self.cache is not None:
            self.cache.set(key, users, self.users_cache_seconds)
        return users

    def get_pipelines(self) -> list[dict]:
        """Pipelines with their stages (`_embedded.statuses`), for names on the review screen. Cached."""
        key = users_cache_key(self.base_url) + ":pipelines"
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return cached
        pipelines = self._get_all("/api/v4/leads/pipelines", {}, "pipelines")
        if self.cache is not None:
            self.cache.set(key, pipelines, self.users_cache_seconds)
        return pipelines

    def user_id_for_email(self, email: str) -> int | None:
        wanted = (email or "").strip().lower()
        if not wanted:
            return None
        for user in self.get_users():
            active = (user.get("rights") or {}).get("is_active", True)
            if active and str(user.get("email") or "").strip().lower() == wanted:
                return int(user["id"])
        return None

    # --- notes -------------------------------------------------------------------------------------

    def add_note(self, lead_id: int, text: str) -> int:
        body = self._request(
            "POST", f"/api/v4/leads/{int(lead_id)}/notes", json=[{"note_type": "common", "params": {"text": text}}]
        )
        return self._first_id(body, "notes", "add note")

    def add_notes(self, notes: list[tuple[int, str]]) -> list[int | None]:
        """Many notes, each on its own deal, in one request: `POST /api/v4/leads/notes` with an `entity_id`
        per item. The ids in the order given; None for one the answer does not name (it may exist)."""
        items = [
            {"entity_id": int(lead_id), "note_type": "common", "params": {"text": text}, "request_id": str(i)}
            for i, (lead_id, text) in enumerate(notes)
        ]
        return self._ids_by_request(self._request("POST", "/api/v4/leads/notes", json=items), "notes", len(items))

    def list_notes(self, lead_id: int) -> list[dict]:
        return self._get_all(f"/api/v4/leads/{int(lead_id)}/notes", {}, "notes")

    # --- tasks -------------------------------------------------------------------------------------

    def create_tasks(self, tasks: list[dict[str, Any]]) -> list[int | None]:
        """Many tasks (each a `task_fields` dict) in one `POST /api/v4/tasks`; ids in the order given."""
        items = [{**task, "request_id": str(i)} for i, task in enumerate(tasks)]
        return self._ids_by_request(self._request("POST", "/api/v4/tasks", json=items), "tasks", len(items))

    @staticmethod
    def task_fields(
        lead_id: int,
        *,
        text: str,
        complete_till: int,
        duration: int | None = None,
        task_type_id: int = 2,
        responsible_user_id: int | None = None,
    ) -> dict[str, Any]:
        task: dict[str, Any] = {
            "task_type_id": task_type_id,
            "text": text,
            "complete_till": int(complete_till),
            "entity_id": int(lead_id),
            "entity_type": "leads",
        }
        if duration is not None:
            task["duration"] = int(duration)
        if responsible_user_id:
            task["responsible_user_id"] = int(responsible_user_id)
        return task

    @staticmethod
    def _ids_by_request(body: Any, key: str, count: int) -> list[int | None]:
        """A batch answer's ids by `request_id` (Kommo echoes ours, or the item's index)."""
        ids: list[int | None] = [None] * count
        try:
            items = body["_embedded"][key]
        except (KeyError, TypeError):
            items = []
        for index, item in enumerate(items if isinstance(items, list) else []):
            try:
                at = int(item.get("request_id", index))
                if 0 <= at < count:
                    ids[at] = int(item["id"])
            except (AttributeError, KeyError, TypeError, ValueError):
                continue
        return ids

    def create_task(
        self,
        lead_id: int,
        *,
        text: str,
        complete_till: int,
        duration: int | None = None,
        task_type_id: int = 2,
        responsible_user_id: int | None = None,
    ) -> int:
        task = self.task_fields(
            lead_id,
            text=text,
            complete_till=complete_till,
            duration=duration,
            task_type_id=task_type_id,
            responsible_user_id=responsible_user_id,
        )
        return self._first_id(self._request("POST", "/api/v4/tasks", json=[task]), "tasks", "create task")

    def update_task(self, task_id: int, **fields: Any) -> None:
        # Setting absolute values twice has the same effect as once: safe to retry.
        self._request("PATCH", f"/api/v4/tasks/{int(task_id)}", json=fields, repeatable=True)

    def complete_task(self, task_id: int, result_text: str) -> None:
        self.update_task(task_id, is_completed=True, result={"text": result_text})

    def get_tasks(self, ids: Iterable[int]) -> list[dict]:
        """Tasks by id, up to 250 a request; a task deleted in Kommo is simply not in the answer."""
        tasks: list[dict] = []
        for chunk in _chunks(sorted({int(i) for i in ids}), PAGE_LIMIT):
            body = self._request("GET", "/api/v4/tasks", params={"filter[id][]": list(chunk), "limit": PAGE_LIMIT})
            tasks.extend(((body or {}).get("_embedded") or {}).get("tasks") or [])
        return tasks

    def list_tasks(self, lead_id: int) -> list[dict]:
        params = {"filter[entity_type]": "leads", "filter[entity_id][]": [int(lead_id)]}
        return self._get_all("/api/v4/tasks", params, "tasks")

    # --- incoming leads ----------------------------------------------------------------------------

    def create_inbound_lead(
        self,
        *,
        source_uid: str,
        source_name: str,
        lead_name: str,
        contact_name: str,
        email: str,
        phone: str = "",
        pipeline_id: int | None = None,
        form_name: str = "Calendly booking",
        form_page: str = "",
        sent_at: int | None = None,
    ) -> dict:
        """An Incoming-leads item (as a web form would make). Returns {"uid", "lead_id", "contact_id"}."""
        fields = [{"field_code": "EMAIL", "values": [{"value": email, "enum_code": "WORK"}]}]
        if phone:
            fields.append({"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]})
        sent_at = int(sent_at or time.time())
        item: dict[str, Any] = {
            "source_name": source_name,
            "source_uid": source_uid,
            "created_at": sent_at,
            "metadata": {
                "form_id": "calsync",
                "form_name": form_name,
                "form_page": form_page or "https://calendly.com",
                "form_sent_at": sent_at,
            },
            "_embedded": {
                "leads": [{"name": lead_name}],
                "contacts": [{"name": contact_name, "custom_fields_values": fields}],
            },
        }
        if pipeline_id:
            item["pipeline_id"] = int(pipeline_id)
        body = self._request("POST", "/api/v4/leads/unsorted/forms", json=[item])
        try:
            unsorted = body["_embedded"]["unsorted"][0]
            embedded = unsorted.get("_embedded") or {}
            contacts = embedded.get("contacts") or []
            return {
                "uid": str(unsorted.get("uid") or ""),
                "lead_id": int(embedded["leads"][0]["id"]),
                "contact_id": int(contacts[0]["id"]) if contacts else None,
            }
        except (KeyError, IndexError, TypeError, ValueError):
            raise KommoUncertainWrite("Kommo incoming lead: answer without a lead id — it may exist") from None
