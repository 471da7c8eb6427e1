"""Kommo's shapes, for the Kommo emulator: problem+json errors, HAL envelopes with ``_links`` and paging
(``page``/``limit`` ≤ 250, ``_links.next``, 204 past the end), and the views of contacts, leads, notes and
tasks as the API returns them (``_embedded`` leads only under ``with=leads``, contacts under ``with=contacts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from sandbox.emulator import Request, Response, json_response
from sandbox.kommo_state import ValidationFailed

HAL = "application/hal+json"
PROBLEM = "application/problem+json"
MAX_LIMIT = 250


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"title": title, "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail, **extra}
    return json_response(status, body, PROBLEM)


def _no_content() -> Response:
    return Response(204)


def _public(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if not k.startswith("_")}


class KommoViews:
    """Mixed into `KommoEmulator`: needs its `config` and `data`."""

    config: dict[str, Any]
    data: Any

    # --- envelopes ----------------------------------------------------------------------------------------

    @staticmethod
    def _base(req: Request) -> str:
        return f"http://{req.headers.get('Host', '127.0.0.1')}"

    def _link(self, req: Request, path: str) -> dict[str, Any]:
        return {"self": {"href": self._base(req) + path}}

    def _page(self, req: Request, items: list[dict[str, Any]], key: str) -> Response:
        """Kommo's paging: ``page``/``limit`` (≤ 250), ``_links.next`` while more remain, 204 past the end."""
        try:
            page = max(int(req.arg("page") or 1), 1)
            limit = int(req.arg("limit") or self.config["default_limit"])
        except ValueError:
            return problem(400, "Bad Request", "page and limit must be integers")
        if limit > MAX_LIMIT:
            return problem(422, "Unprocessable Entity", f"Limit {MAX_LIMIT} per page")
        limit = max(limit, 1)
        chunk = items[(page - 1) * limit : page * limit]
        if not chunk:
            return _no_content()
        flat = {k: v[-1] for k, v in req.query.items() if not k.endswith("[]")}
        repeated = [(k, v) for k, values in req.query.items() if k.endswith("[]") for v in values]

        def href(number: int) -> dict[str, str]:
            query = urlencode([*((k, v) for k, v in {**flat, "page": number, "limit": limit}.items()), *repeated])
            return {"href": f"{self._base(req)}{req.path}?{query}"}

        links = {"self": href(page)}
        if page * limit < len(items):
            links["next"] = href(page + 1)
        if page > 1:
            links["prev"] = href(page - 1)
        return json_response(200, {"_page": page, "_links": links, "_embedded": {key: chunk}}, HAL)

    def _validation(self, exc: ValidationFailed) -> Response:
        if not exc.errors:
            return problem(400, "Bad Request", "Request data can not be empty")
        return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": exc.errors})

    def _batch(self, req: Request) -> Any:
        items = req.json()
        if isinstance(items, list) and len(items) > MAX_LIMIT:
            return problem(422, "Unprocessable Entity", f"Limit {MAX_LIMIT} per request")
        return items

    # --- views ----------------------------------------------------------------------------------------------

    def _contact_view(self, req: Request, contact: Mapping[str, Any]) -> dict[str, Any]:
        view = {**_public(contact), "_links": self._link(req, f"/api/v4/contacts/{contact['id']}")}
        embedded: dict[str, Any] = {"tags": [], "companies": []}
        if "leads" in (req.arg("with") or "").split(","):
            embedded["leads"] = [
                {"id": lead_id, "_links": self._link(req, f"/api/v4/leads/{lead_id}")}
                for lead_id in self.data.lead_ids_of(contact["id"])
            ]
        view["_embedded"] = embedded
        return view

    def _lead_view(self, req: Request, lead: Mapping[str, Any]) -> dict[str, Any]:
        view = {**_public(lead), "_links": self._link(req, f"/api/v4/leads/{lead['id']}")}
        embedded: dict[str, Any] = {"tags": [], "companies": []}
        if "contacts" in (req.arg("with") or "").split(","):
            ids = lead["_contact_ids"]
            embedded["contacts"] = [
                {"id": cid, "is_main": i == 0, "_links": self._link(req, f"/api/v4/contacts/{cid}")}
                for i, cid in enumerate(ids)
            ]
        view["_embedded"] = embedded
        return view

    def _note_view(self, req: Request, note: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/api/v4/leads/{note['entity_id']}/notes/{note['id']}"
        return {**{k: v for k, v in note.items() if k != "entity_type"}, "_links": self._link(req, path)}

    def _task_links(self, req: Request, task: Mapping[str, Any]) -> dict[str, Any]:
        return {"_links": self._link(req, f"/api/v4/tasks/{task['id']}")}

    def _task_view(self, req: Request, task: Mapping[str, Any]) -> dict[str, Any]:
        return {**task, **self._task_links(req, task)}
