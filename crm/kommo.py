"""A thin client for Kommo API v4: the calls calsync needs, typed errors, a shared rate limit, safe retries.

Retries: a 429 means Kommo did not act, so any call waits `retry_after` and tries again (up to a limit).
Reads, and PATCHes that set absolute values, are also retried on 5xx and network errors with backoff.
A POST is never re-sent after a 5xx, a timeout or a dropped connection (Kommo has no idempotency key):
`KommoUncertainWrite` tells the caller to look for its marker before writing again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import requests

from calsync.errors import PermanentSyncError
from calsync.http import parse_retry_after
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
PAGE_LIMIT = 250
IP_BLOCK_PAUSE = 300.0  # seconds every process stays off Kommo after a 403 "IP blocked" page


# --- helpers ---------------------------------------------------------------------------------------


class Limiter(Protocol):
    def acquire(self) -> float: ...
    def pause(self, seconds: float) -> None: ...


class NoLimit:
    def acquire(self) -> float:
        return 0.0

    def pause(self, seconds: float) -> None:
        return None


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


def _problem_detail(response: requests.Response) -> tuple[str, dict | None]:
    try:
        body = response.json()
    except ValueError:
        return "", None
    if not isinstance(body, dict):
        return "", None
    detail = str(body.get("detail") or body.get("title") or "")[:300]
    return detail, body


# --- the client ------------------------------------------------------------------------------------


class KommoClient:
    def __init__(
        self,
        base_url: str,
        token: str | TokenProvider,
        session: requests.Session,
        rate_limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        cache: Any = None,
        users_cache_seconds: int = 3600,
        max_inline_wait: float = 10.0,
        read_backoff: Sequence[float] = (0.5, 2.0, 5.0),
        max_rate_limited_retries: int = 2,
        max_pages: int = 4,
    ):
        if not base_url or not token:
            raise PermanentSyncError(
                "Kommo is not configured: set KOMMO_BASE_URL and KOMMO_ACCESS_TOKEN, or connect Kommo in the admin"
            )
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.rate_limiter = rate_limiter or NoLimit()
        self.sleep = sleep
        self.cache = cache
        self.users_cache_seconds = users_cache_seconds
        self.max_inline_wait = max_inline_wait
        self.read_backoff = tuple(read_backoff)
        self.max_rate_limited_retries = max_rate_limited_retries
        self.max_pages = max_pages
        self.tokens: TokenProvider = StaticToken(token) if isinstance(token, str) else token

    # --- transport -----------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: Any = None, json: Any = None, repeatable: bool | None = None
    ) -> Any:
        """One API call: JSON body, or None for 204. `repeatable`: safe to send twice (default: GET only)."""
        repeatable = method == "GET" if repeatable is None else repeatable
        url = f"{self.base_url}{path}"
        failures = 0
        rate_limited = 0
        token = self.tokens.access_token()
        reauthorized = False
        while True:
            self.rate_limiter.acquire()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            try:
                response = self.session.request(method, url, params=params, json=json, headers=headers)
            except requests.ConnectTimeout as exc:  # never connected: nothing was sent, even a POST is safe
                error: KommoError = KommoServerError(
                    f"Kommo {method} {path}: connect timeout ({exc.__class__.__name__})"
                )
                sent = False
            except requests.RequestException as exc:
                error = KommoServerError(f"Kommo {method} {path}: {exc.__class__.__name__}")
                sent = True
            else:
                logger.debug("kommo %s %s → %s", method, path, response.status_code)
                if response.status_code == 401 and not reauthorized:
                    # Kommo did not act on a 401, so even a POST may go again, once, with a new token.
                    reauthorized = True
                    fresh = self.tokens.rejected(token)
                    if fresh:
                        token = fresh
                        continue
                if response.status_code == 429:
                    retry_after = self._retry_after(response)
                    self.rate_limiter.pause(retry_after)
                    if retry_after <= self.max_inline_wait and rate_limited < self.max_rate_limited_retries:
                        rate_limited += 1
                        logger.warning("kommo 429 on %s %s: waiting %.1fs", method, path, retry_after)
                        self.sleep(retry_after)
                        continue
                    raise KommoRateLimited(
                        f"Kommo {method} {path}: 429 Too Many Requests", status=429, retry_after=retry_after
                    )
                if response.status_code < 500:
                    return self._parse(method, path, response, repeatable)
                detail, _ = _problem_detail(response)
                error = KommoServerError(
                    f"Kommo {method} {path}: HTTP {response.status_code} {detail}".strip(), status=response.status_code
                )
                sent = True
            if sent and not repeatable:
                raise KommoUncertainWrite(f"{error} — the write may have happened", status=error.status)
            if failures >= len(self.read_backoff):
                raise error
            self.sleep(self.read_backoff[failures])
            failures += 1

    @staticmethod
    def _retry_after(response: requests.Response) -> float:
        _, body = _problem_detail(response)
        if body and isinstance(body.get("retry_after"), (int, float)):
            return float(body["retry_after"])
        header = parse_retry_after(response.headers.get("Retry-After"))
        return header if header is not None else 1.0

    def _parse(self, method: str, path: str, response: requests.Response, repeatable: bool) -> Any:
        status = response.status_code
        where = f"Kommo {method} {path}"
        if status == 204:
            return None
        if 200 <= status < 300:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                if repeatable:
                    raise KommoServerError(
                        f"{where}: HTTP {status} with a body that is not JSON", status=status
                    ) from None
                raise KommoUncertainWrite(f"{where}: answer is not JSON — the write may have happened") from None
        detail, body = _problem_detail(response)
        if status == 401:
            raise KommoAuthError(f"{where}: 401 Unauthorized — {self.tokens.hint} ({detail})", status=status)
        if status == 402:
            raise KommoPaymentRequired(f"{where}: 402 Payment required — the Kommo account is unpaid", status=status)
        if status == 403:
            if body is None:
                self.rate_limiter.pause(IP_BLOCK_PAUSE)  # keep every process off Kommo instead of hammering
                raise KommoIPBlocked(
                    f"{where}: 403 with a non-JSON page — Kommo has probably blocked this IP for exceeding its "
                    "rate limit; contact Kommo support",
                    status=status,
                )
            raise KommoForbidden(f"{where}: 403 Forbidden ({detail})", status=status)
        if status == 404:
            raise KommoNotFound(f"{where}: 404 Not Found", status=status)
        if status in (400, 422):
            errors = (body or {}).get("validation-errors") or []
            summary = "; ".join(
                f"{e.get('path')}: {e.get('detail')}"
                for item in errors
                if isinstance(item, dict)
                for e in item.get("errors") or []
            )
            raise KommoValidationError(
                f"{where}: {status} {detail}" + (f" ({summary[:500]})" if summary else ""), status=status, errors=errors
            )
        raise KommoPermanentError(f"{where}: HTTP {status} {detail}".strip(), status=status)

    def _get_all(self, path: str, params: dict, key: str) -> list[dict]:
        items: list[dict] = []
        for page in range(1, self.max_pages + 1):
            body = self._request("GET", path, params={**params, "page": page, "limit": PAGE_LIMIT})
            if not body:
                break
            items.extend((body.get("_embedded") or {}).get(key) or [])
            if not (body.get("_links") or {}).get("next"):
                break
        return items

    @staticmethod
    def _first_id(body: Any, key: str, where: str) -> int:
        try:
            return int(body["_embedded"][key][0]["id"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise KommoUncertainWrite(f"Kommo {where}: answer without an id — the write may have happened") from None

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
