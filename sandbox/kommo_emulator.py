"""A local Kommo API v4 (https://developers.kommo.com/reference): the calls calsync makes, with Kommo's
shapes, status codes and traps — 204 with no body for anything empty, a fuzzy ``query`` over every
field, lead ids only under ``with=leads``, 400 ``validation-errors``, 7 requests a second answered with
429 + ``retry_after`` in the body, and (optionally) the IP block: 403 as an HTML page on every call.

    python -m sandbox.kommo_emulator --port 0 --seed-file seed.json     # prints its URL
    with KommoEmulator.running(seed=…) as emu: …                         # in a thread, for tests
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from sandbox import deal_page, saved_state
from sandbox.emulator import Emulator, Request, Response, Route, SlidingWindow, json_response, route
from sandbox.kommo_state import KommoState, ValidationFailed
from sandbox.kommo_views import HAL, KommoViews, _no_content, _public, problem

DEAL_PAGE = re.compile(r"/leads/detail/(?P<lead_id>\d+)")  # where Kommo's web app shows a deal
BLOCKED_PAGE = b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"  # noqa: E501


class KommoEmulator(KommoViews, Emulator):
    """A local Kommo API v4 for tests, benchmarks and the newcomer sandbox."""

    name = "kommo"
    DEFAULT_CONFIG = {
        "rps": 7,  # Kommo: "not more than 7 requests per second"; 0 switches the limit off
        "rate_window": 1.0,
        "arrival_jitter_ms": 0,  # up to this much delay between a request's sending and Kommo counting it
        "retry_after": 1,  # seconds, in the 429 body (the reference's example shows 300)
        "block_after": 0,  # 429s within block_window that get the IP blocked (403 HTML); 0 = never
        "block_window": 60.0,
        "block_seconds": 600.0,
        "payment_required": False,  # every call answers 402, as an account whose trial ended
        "default_limit": 50,
    }

    def reset_state(self, seed: Mapping[str, Any]) -> None:
        handed_out = self.data.next_id if hasattr(self, "data") else 0
        self.data = KommoState(seed, self.now)
        self.data.next_id = max(self.data.next_id, handed_out)  # calsync may still hold those ids: never again
        self._window = SlidingWindow(int(self.config["rps"]), float(self.config["rate_window"]))
        self._violations: list[float] = []
        self._blocked_until = 0.0

    def export_state(self) -> dict[str, Any]:
        return saved_state.export_kommo(self.data)

    def import_state(self, saved: Mapping[str, Any]) -> None:
        saved_state.import_kommo(self.data, saved)

    def page(self, req: Request) -> Response | None:
        match = DEAL_PAGE.fullmatch(req.path)
        return deal_page.render(self.data, int(match["lead_id"])) if match else None

    def on_configure(self) -> None:
        self._window = SlidingWindow(int(self.config["rps"]), float(self.config["rate_window"]))

    def build_routes(self) -> list[Route]:
        return [
            route("GET", "/api/v4/account", self.get_account),
            route("GET", "/api/v4/users", self.list_users),
            route("GET", "/api/v4/contacts", self.list_contacts),
            route("GET", "/api/v4/contacts/{contact_id:d}", self.get_contact),
            route("GET", "/api/v4/leads", self.list_leads),
            route("GET", "/api/v4/leads/pipelines", self.list_pipelines),
            route("GET", "/api/v4/leads/notes", self.list_notes),
            route("POST", "/api/v4/leads/notes", self.add_notes),
            route("POST", "/api/v4/leads/unsorted/forms", self.add_unsorted_forms),
            route("POST", "/api/v4/leads/unsorted/{uid}/accept", self.accept_unsorted),
            route("GET", "/api/v4/leads/{lead_id:d}", self.get_lead),
            route("GET", "/api/v4/leads/{lead_id:d}/notes", self.list_notes),
            route("POST", "/api/v4/leads/{lead_id:d}/notes", self.add_notes),
            route("GET", "/api/v4/tasks", self.list_tasks),
            route("POST", "/api/v4/tasks", self.add_tasks),
            route("PATCH", "/api/v4/tasks", self.update_tasks),
            route("GET", "/api/v4/tasks/{task_id:d}", self.get_task),
            route("PATCH", "/api/v4/tasks/{task_id:d}", self.update_tasks),
        ]

    # --- gate: block, auth, payment, rate limit ----------------------------------------------------------

    def gate(self, req: Request, found: Route) -> Response | None:
        now = self.now()
        if now < self._blocked_until:
            return Response(403, BLOCKED_PAGE, "text/html")
        scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
        user = self.data.token_user(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            return problem(401, "Unauthorized", "Unauthorized")
        req.user = user
        if self.config["payment_required"]:
            return problem(402, "Payment Required", "Payment required")
        if not self._window.allow(now):
            return self._too_many(now)
        return None

    def _too_many(self, now: float) -> Response:
        block_after = int(self.config["block_after"])
        if block_after:
            window = float(self.config["block_window"])
            self._violations = [t for t in self._violations if t > now - window] + [now]
            if len(self._violations) >= block_after:
                self._blocked_until = now + float(self.config["block_seconds"])
        return problem(
            429,
            "Too Many Requests",
            "You have sent too many requests in a given amount of time",
            retry_after=self.config["retry_after"],
        )

    def rate_limited(self, req: Request) -> Response:
        return self._too_many(self.now())

    def server_error(self, status: int) -> Response:
        if status == 500:
            return problem(500, "ErrInternalServer", "Internal Server Error", trace_id=uuid.uuid4().hex[:16])
        titles = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return problem(status, titles.get(status, "Error"), titles.get(status, "Error"))

    def bad_body(self, message: str) -> Response:
        return problem(400, "Bad Request", "Request data can not be empty" if message == "empty body" else message)

    def not_found(self, req: Request, allowed: list[str]) -> Response:
        if allowed:
            return problem(405, "Method Not Allowed", f"Method {req.method} is not allowed")
        return problem(404, "Not Found", f"Cannot {req.method} {req.path}")

    # --- handlers -----------------------------------------------------------------------------------------------

    def get_account(self, req: Request) -> Response:
        body = {"id": self.data.account_id, "name": "Sandbox", "subdomain": self.data.subdomain, "country": "US"}
        return json_response(200, {**body, "_links": self._link(req, "/api/v4/account")}, HAL)

    def list_users(self, req: Request) -> Response:
        if not req.user["is_admin"]:
            return problem(403, "Forbidden", "Insufficient rights")
        users = []
        for user in self.data.users.values():
            rights = {"leads": {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"}}
            rights.update({"mail_access": True, "catalog_access": True, "status_rights": [], "is_free": False})
            rights.update({"is_admin": user["is_admin"], "is_active": user["is_active"]})
            rights.update({"group_id": None, "role_id": None})
            public = {k: user[k] for k in ("id", "name", "email", "lang")}
            users.append({**public, "rights": rights, "_links": self._link(req, f"/api/v4/users/{user['id']}")})
        return self._page(req, users, "users")

    def list_contacts(self, req: Request) -> Response:
        query = req.arg("query")
        found = self.data.search_contacts(query) if query else self.data.visible_contacts()
        wanted = {int(i) for i in req.args("filter[id]") if i.isdigit()}
        found = [c for c in found if not wanted or c["id"] in wanted]
        return self._page(req, [self._contact_view(req, c) for c in found], "contacts")

    def get_contact(self, req: Request, contact_id: str) -> Response:
        contact = self.data.contacts.get(int(contact_id))
        if contact is None or contact["_unsorted_uid"]:
            return _no_content()
        return json_response(200, self._contact_view(req, contact), HAL)

    def list_leads(self, req: Request) -> Response:
        query = req.arg("query")
        leads = self.data.search_leads(query) if query else list(self.data.leads.values())
        for name, key in (("filter[id]", "id"), ("filter[pipeline_id]", "pipeline_id")):
            wanted = {int(v) for v in req.args(name) if v.isdigit()}
            leads = [lead for lead in leads if not wanted or lead[key] in wanted]
        responsible = {int(v) for v in req.args("filter[responsible_user_id]") if v.isdigit()}
        leads = [lead for lead in leads if not responsible or lead["responsible_user_id"] in responsible]
        statuses = {
            (req.arg(f"filter[statuses][{i}][pipeline_id]"), req.arg(f"filter[statuses][{i}][status_id]"))
            for i in range(10)
            if req.arg(f"filter[statuses][{i}][status_id]")
        }
        if statuses:
            leads = [lead for lead in leads if (str(lead["pipeline_id"]), str(lead["status_id"])) in statuses]
        leads = [lead for lead in leads if not lead["is_deleted"]]
        return self._page(req, [self._lead_view(req, lead) for lead in leads], "leads")

    def get_lead(self, req: Request, lead_id: str) -> Response:
        lead = self.data.leads.get(int(lead_id))
        return json_response(200, self._lead_view(req, lead), HAL) if lead else _no_content()

    def list_pipelines(self, req: Request) -> Response:
        pipelines = [
            {**p, "account_id": self.data.account_id, "_embedded": {"statuses": p["statuses"]}}
            for p in self.data.pipelines.values()
        ]
        body = {"_total_items": len(pipelines), "_embedded": {"pipelines": pipelines}}
        return json_response(200, {**body, "_links": self._link(req, req.path)}, HAL)

    def list_notes(self, req: Request, lead_id: str | None = None) -> Response:
        notes = list(self.data.notes.values())
        entity_ids = {int(lead_id)} if lead_id else {int(v) for v in req.args("filter[entity_id]") if v.isdigit()}
        types = set(req.args("filter[note_type]"))
        notes = [n for n in notes if (not entity_ids or n["entity_id"] in entity_ids)]
        notes = [n for n in notes if not types or n["note_type"] in types]
        return self._page(req, [self._note_view(req, n) for n in notes], "notes")

    def add_notes(self, req: Request, lead_id: str | None = None) -> Response:
        items = self._batch(req)
        if isinstance(items, Response):
            return items
        try:
            created = self.data.add_notes(items, int(lead_id) if lead_id else None, req.user["id"])
        except ValidationFailed as exc:
            return self._validation(exc)
        notes = [
            {"id": note["id"], "entity_id": note["entity_id"], "request_id": rid, **self._note_links(req, note)}
            for note, rid in created
        ]
        return json_response(200, {"_links": self._link(req, req.path), "_embedded": {"notes": notes}}, HAL)

    def _note_links(self, req: Request, note: Mapping[str, Any]) -> dict[str, Any]:
        return {"_links": self._link(req, f"/api/v4/leads/{note['entity_id']}/notes/{note['id']}")}

    def control_action(self, action: str, method: str, body: Any) -> Response | None:
        """What a person does in Kommo's own screens, which the API cannot: delete a task, or edit one."""
        if action not in ("delete_task", "edit_task") or method != "POST":
            return None
        with self.lock:
            task = self.data.tasks.get(int(body["id"]))
            if task is None:
                return json_response(404, {"error": f"no task {body['id']}"})
            if action == "delete_task":
                del self.data.tasks[task["id"]]
            else:
                task.update({k: v for k, v in body.items() if k in ("complete_till", "is_completed", "entity_id")})
        return json_response(200, {"ok": True})

    def list_tasks(self, req: Request) -> Response:
        tasks = list(self.data.tasks.values())
        entity_type = req.arg("filter[entity_type]")
        entity_ids = {int(v) for v in req.args("filter[entity_id]") if v.isdigit()}
        if entity_ids and not entity_type:
            return problem(400, "Bad Request", "filter[entity_id] requires filter[entity_type]")
        filters = {
            "entity_type": {entity_type} if entity_type else set(),
            "entity_id": entity_ids,
            "task_type_id": {int(v) for v in req.args("filter[task_type]") if v.isdigit()},
            "id": {int(v) for v in req.args("filter[id]") if v.isdigit()},
            "responsible_user_id": {int(v) for v in req.args("filter[responsible_user_id]") if v.isdigit()},
        }
        for key, wanted in filters.items():
            tasks = [t for t in tasks if not wanted or t[key] in wanted]
        completed = req.arg("filter[is_completed]")
        if completed in ("0", "1", "true", "false"):
            tasks = [t for t in tasks if t["is_completed"] == (completed in ("1", "true"))]
        low, high = req.arg("filter[updated_at][from]"), req.arg("filter[updated_at][to]")
        tasks = [t for t in tasks if not low or t["updated_at"] >= int(low)]
        tasks = [t for t in tasks if not high or t["updated_at"] <= int(high)]
        for key in ("created_at", "complete_till", "id"):
            direction = req.arg(f"order[{key}]")
            if direction in ("asc", "desc"):
                tasks.sort(key=lambda t, k=key: t[k], reverse=direction == "desc")
        return self._page(req, [self._task_view(req, t) for t in tasks], "tasks")

    def get_task(self, req: Request, task_id: str) -> Response:
        task = self.data.tasks.get(int(task_id))
        return json_response(200, self._task_view(req, task), HAL) if task else _no_content()

    def add_tasks(self, req: Request) -> Response:
        items = self._batch(req)
        if isinstance(items, Response):
            return items
        try:
            created = self.data.add_tasks(items, req.user["id"])
        except ValidationFailed as exc:
            return self._validation(exc)
        self._touch_leads(task for task, _ in created)
        tasks = [{"id": t["id"], "request_id": rid, **self._task_links(req, t)} for t, rid in created]
        return json_response(200, {"_links": self._link(req, req.path), "_embedded": {"tasks": tasks}}, HAL)

    def update_tasks(self, req: Request, task_id: str | None = None) -> Response:
        items = self._batch(req)
        if isinstance(items, Response):
            return items
        if task_id is not None and int(task_id) not in self.data.tasks:
            return problem(404, "Not Found", f"Task {task_id} not found")
        try:
            updated = self.data.update_tasks(items, task_id=int(task_id) if task_id else None)
        except ValidationFailed as exc:
            return self._validation(exc)
        self._touch_leads(task for task, _ in updated)
        results = [
            {"id": t["id"], "updated_at": t["updated_at"], "request_id": rid, **self._task_links(req, t)}
            for t, rid in updated
        ]
        if task_id is not None:  # a single-task PATCH answers at the root ("only id and updated_at")
            return json_response(200, {k: v for k, v in results[0].items() if k != "request_id"}, HAL)
        return json_response(200, {"_links": self._link(req, req.path), "_embedded": {"tasks": results}}, HAL)

    def _touch_leads(self, tasks: Any) -> None:
        for task in tasks:
            lead = self.data.leads.get(task["entity_id"]) if task["entity_type"] == "leads" else None
            if lead is not None:
                lead["updated_at"] = int(self.now())
                open_tasks = [
                    t["complete_till"]
                    for t in self.data.tasks.values()
                    if t["entity_type"] == "leads" and t["entity_id"] == lead["id"] and not t["is_completed"]
                ]
                lead["closest_task_at"] = min(open_tasks) if open_tasks else None

    def add_unsorted_forms(self, req: Request) -> Response:
        items = self._batch(req)
        if isinstance(items, Response):
            return items
        try:
            created = self.data.add_unsorted_forms(items)
        except ValidationFailed as exc:
            return self._validation(exc)
        unsorted = [
            {
                "uid": record["uid"],
                "request_id": rid,
                "_embedded": {
                    "leads": [{"id": i} for i in record["lead_ids"]],
                    "contacts": [{"id": i} for i in record["contact_ids"]],
                    "companies": [],
                },
            }
            for record, rid in created
        ]
        return json_response(200, {"_links": self._link(req, req.path), "_embedded": {"unsorted": unsorted}}, HAL)

    def accept_unsorted(self, req: Request, uid: str) -> Response:
        record = self.data.accept_unsorted(uid)
        if record is None:
            return problem(404, "Not Found", f"Incoming lead {uid} not found")
        return json_response(200, {"uid": uid, "_embedded": {"leads": [{"id": i} for i in record["lead_ids"]]}}, HAL)

    # --- state for assertions ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        data = self.data
        return {
            "contacts": [_public(c) | {"hidden": bool(c["_unsorted_uid"])} for c in data.contacts.values()],
            "leads": [_public(lead) | {"contact_ids": lead["_contact_ids"]} for lead in data.leads.values()],
            "notes": list(data.notes.values()),
            "tasks": list(data.tasks.values()),
            "unsorted": list(data.unsorted.values()),
            "users": list(data.users.values()),
            "blocked": self.now() < self._blocked_until,
        }


if __name__ == "__main__":
    KommoEmulator.main()
