"""The Kommo emulator's data: a seeded account (users, pipelines, contacts, leads) plus the notes, tasks
and incoming leads written through the API. No HTTP here: `kommo_emulator` wraps it in Kommo's shapes.

Validation is all-or-nothing per request: one bad item refuses the whole batch and nothing is applied,
with one ``validation-errors`` entry per bad item (``request_id`` = the item's own or its index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

WON, LOST = 142, 143
NOTE_TYPES = frozenset(
    {"common", "service_message", "extended_service_message", "call_in", "call_out", "sms_in", "sms_out"}
    | {"geolocation", "attachment"}
)
ENTITY_TYPES = frozenset({"leads", "contacts", "companies", "customers"})
EMAIL_FIELD_ID, PHONE_FIELD_ID, COMMENT_FIELD_ID = 1001, 1002, 1003
INVALID_CHOICE = "The value you selected is not a valid choice."
DEFAULT_TOKEN = "sandbox-kommo-token"  # noqa: S105 - a sandbox credential, printed on purpose
DEFAULT_PIPELINE = {
    "id": 5597036,
    "name": "Sales",
    "is_main": True,
    "statuses": [
        {"id": 49366080, "name": "Incoming leads", "type": 1},
        {"id": 49366085, "name": "Qualified", "type": 0},
        {"id": 49366088, "name": "Meeting scheduled", "type": 0},
        {"id": WON, "name": "Closed - won", "type": 0},
        {"id": LOST, "name": "Closed - lost", "type": 0},
    ],
}


class ValidationFailed(Exception):
    """400 ``validation-errors``: a list of ``{"request_id", "errors": [{"code", "path", "detail"}]}``."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(f"{len(errors)} invalid item(s)")
        self.errors = errors


def _error(code: str, path: str, detail: str) -> dict[str, str]:
    return {"code": code, "path": path, "detail": detail}


def _multitext(field_id: int, name: str, code: str, values: Iterable[str]) -> dict[str, Any]:
    return {
        "field_id": field_id,
        "field_name": name,
        "field_code": code,
        "field_type": "multitext",
        "values": [{"value": v, "enum_id": field_id * 10 + 1, "enum_code": "WORK"} for v in values],
    }


class KommoState:
    def __init__(self, seed: Mapping[str, Any], now: Callable[[], float]):
        self.now = now
        self.account_id = int(seed.get("account_id", 28805383))
        self.subdomain = str(seed.get("subdomain", "sandbox"))
        self.users = {int(u["id"]): self._user(u) for u in seed.get("users", [])} or {
            504141: self._user({"id": 504141, "name": "Sandbox Admin", "email": "admin@sandbox.example"})
        }
        tokens = seed.get("tokens") or [DEFAULT_TOKEN]
        admin = next(iter(self.users))
        self.tokens = dict(tokens) if isinstance(tokens, Mapping) else dict.fromkeys(tokens, admin)
        pipelines = seed.get("pipelines") or [DEFAULT_PIPELINE]
        self.pipelines = {int(p["id"]): p for p in pipelines}
        self.next_id = int(seed.get("first_id", 9000001))  # ids handed out count up from here, never repeat
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.unsorted: dict[str, dict[str, Any]] = {}
        for raw in seed.get("leads", []):
            self._add_lead(raw)
        for raw in seed.get("contacts", []):
            self._add_contact(raw)
        for raw in seed.get("notes", []):
            self.notes[int(raw["id"])] = dict(raw)
        for raw in seed.get("tasks", []):
            self.tasks[int(raw["id"])] = {**self._task_defaults(admin), **raw}

    # --- seed normalisation -----------------------------------------------------------------------------

    @staticmethod
    def _user(raw: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": int(raw["id"]),
            "name": raw.get("name", ""),
            "email": raw.get("email", ""),
            "lang": raw.get("lang", "en"),
            "is_admin": bool(raw.get("is_admin", True)),
            "is_active": bool(raw.get("is_active", True)),
        }

    def _stamp(self) -> int:
        return int(self.now())

    def _new_id(self, existing: Mapping[int, Any]) -> int:
        while self.next_id in existing:
            self.next_id += 1
        self.next_id += 1
        return self.next_id - 1

    def default_pipeline(self) -> dict[str, Any]:
        return next((p for p in self.pipelines.values() if p.get("is_main")), next(iter(self.pipelines.values())))

    def _add_lead(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        pipeline = self.pipelines.get(int(raw.get("pipeline_id", 0))) or self.default_pipeline()
        now = self._stamp()
        status_id = int(raw.get("status_id", pipeline["statuses"][1 if len(pipeline["statuses"]) > 1 else 0]["id"]))
        lead = {
            "id": int(raw.get("id") or self._new_id(self.leads)),
            "name": raw.get("name", ""),
            "price": raw.get("price", 0),
            "responsible_user_id": int(raw.get("responsible_user_id", next(iter(self.users)))),
            "group_id": 0,
            "status_id": status_id,
            "pipeline_id": int(pipeline["id"]),
            "loss_reason_id": None,
            "created_by": 0,
            "updated_by": 0,
            "created_at": int(raw.get("created_at", now)),
            "updated_at": int(raw.get("updated_at", now)),
            "closed_at": raw.get("closed_at", now if status_id in (WON, LOST) else None),
            "closest_task_at": None,
            "is_deleted": bool(raw.get("is_deleted", False)),
            "custom_fields_values": raw.get("custom_fields_values"),
            "account_id": self.account_id,
            "_contact_ids": [int(c) for c in raw.get("contact_ids", [])],
        }
        self.leads[lead["id"]] = lead
        return lead

    def _add_contact(self, raw: Mapping[str, Any], *, unsorted_uid: str | None = None) -> dict[str, Any]:
        fields = list(raw.get("custom_fields_values") or [])
        if raw.get("emails"):
            fields.append(_multitext(EMAIL_FIELD_ID, "Email", "EMAIL", raw["emails"]))
        if raw.get("phones"):
            fields.append(_multitext(PHONE_FIELD_ID, "Phone", "PHONE", raw["phones"]))
        if raw.get("comment"):
            text = {"field_id": COMMENT_FIELD_ID, "field_name": "Comment", "field_code": None, "field_type": "textarea"}
            fields.append({**text, "values": [{"value": raw["comment"]}]})
        now = self._stamp()
        first, last = raw.get("first_name", ""), raw.get("last_name", "")
        contact = {
            "id": int(raw.get("id") or self._new_id(self.contacts)),
            "name": raw.get("name") or f"{first} {last}".strip(),
            "first_name": first,
            "last_name": last,
            "responsible_user_id": int(raw.get("responsible_user_id", next(iter(self.users)))),
            "group_id": 0,
            "created_by": 0,
            "updated_by": 0,
            "created_at": int(raw.get("created_at", now)),
            "updated_at": int(raw.get("updated_at", now)),
            "is_deleted": False,
            "closest_task_at": None,
            "custom_fields_values": fields or None,
            "account_id": self.account_id,
            "_unsorted_uid": unsorted_uid,
        }
        self.contacts[contact["id"]] = contact
        for lead_id in raw.get("lead_ids", []):
            self.link(contact["id"], int(lead_id))
        for lead in self.leads.values():  # leads seeded with contact_ids
            if contact["id"] in lead["_contact_ids"]:
                self.link(contact["id"], lead["id"])
        return contact

    def link(self, contact_id: int, lead_id: int) -> None:
        lead = self.leads[lead_id]
        if contact_id not in lead["_contact_ids"]:
            lead["_contact_ids"].append(contact_id)

    # --- reading ------------------------------------------------------------------------------------------

    def lead_ids_of(self, contact_id: int) -> list[int]:
        return [lead["id"] for lead in self.leads.values() if contact_id in lead["_contact_ids"]]

    def visible_contacts(self) -> list[dict[str, Any]]:
        """Contacts of an incoming lead that nobody accepted yet do not show in lists or search."""
        return [c for c in self.contacts.values() if not c["_unsorted_uid"]]

    def search_contacts(self, query: str) -> list[dict[str, Any]]:
        """Kommo's ``query``: a case-insensitive substring match over every filled field, not just EMAIL."""
        needle = query.strip().lower()
        return [c for c in self.visible_contacts() if any(needle in text for text in _searchable(c))]

    def search_leads(self, query: str) -> list[dict[str, Any]]:
        needle = query.strip().lower()
        return [
            lead
            for lead in self.leads.values()
            if needle in str(lead["name"]).lower() or needle in str(lead["id"]) or needle in str(lead["price"])
        ]

    def token_user(self, token: str) -> dict[str, Any] | None:
        user_id = self.tokens.get(token)
        return self.users.get(int(user_id)) if user_id is not None else None

    # --- writing ------------------------------------------------------------------------------------------

    def add_notes(self, items: Any, entity_id: int | None, user_id: int) -> list[tuple[dict[str, Any], str]]:
        """``POST /leads/{id}/notes`` (entity_id from the path) or ``POST /leads/notes`` (from each item)."""
        items = _require_batch(items)
        errors, valid = [], []
        for index, item in enumerate(items):
            rid = str(item.get("request_id", index)) if isinstance(item, Mapping) else str(index)
            problems = _note_problems(item, entity_id, self.leads)
            if problems:
                errors.append({"request_id": rid, "errors": problems})
            else:
                valid.append((item, rid))
        if errors:
            raise ValidationFailed(errors)
        created, now = [], self._stamp()
        for item, rid in valid:
            note = {
                "id": self._new_id(self.notes),
                "entity_id": int(entity_id if entity_id is not None else item["entity_id"]),
                "entity_type": "leads",
                "created_by": int(item.get("created_by", user_id)),
                "updated_by": int(item.get("created_by", user_id)),
                "created_at": now,
                "updated_at": now,
                "responsible_user_id": int(item.get("responsible_user_id", user_id)),
                "group_id": 0,
                "note_type": item["note_type"],
                "params": dict(item.get("params") or {}),
                "account_id": self.account_id,
            }
            self.notes[note["id"]] = note
            self.leads[note["entity_id"]]["updated_at"] = now
            created.append((note, rid))
        return created

    def _task_defaults(self, user_id: int) -> dict[str, Any]:
        now = self._stamp()
        return {
            "created_by": user_id,
            "updated_by": user_id,
            "created_at": now,
            "updated_at": now,
            "responsible_user_id": user_id,
            "group_id": 0,
            "entity_id": None,
            "entity_type": None,
            "duration": 0,
            "is_completed": False,
            "task_type_id": 1,
            "text": "",
            "result": [],
            "complete_till": now,
            "account_id": self.account_id,
        }

    def add_tasks(self, items: Any, user_id: int) -> list[tuple[dict[str, Any], str]]:
        items = _require_batch(items)
        errors = []
        for index, item in enumerate(items):
            problems = self._task_problems(item, creating=True)
            if problems:
                errors.append({"request_id": str(_rid(item, index)), "errors": problems})
        if errors:
            raise ValidationFailed(errors)
        created = []
        for index, item in enumerate(items):
            task = {**self._task_defaults(user_id), **_task_fields(item), "id": self._new_id(self.tasks)}
            self.tasks[task["id"]] = task
            created.append((task, str(_rid(item, index))))
        return created

    def update_tasks(self, items: Any, *, task_id: int | None = None) -> list[tuple[dict[str, Any], str]]:
        """``PATCH /tasks/{id}`` (one object, `task_id` given) or ``PATCH /tasks`` (a batch with ids)."""
        batch = [{**items, "id": task_id}] if task_id is not None and isinstance(items, Mapping) else items
        batch = _require_batch(batch)
        errors = []
        for index, item in enumerate(batch):
            problems = self._task_problems(item, creating=False)
            if not problems and int(item["id"]) not in self.tasks:
                problems = [_error("NotFound", "id", f"Task {item['id']} not found")]
            if problems:
                errors.append({"request_id": str(_rid(item, index)), "errors": problems})
        if errors:
            raise ValidationFailed(errors)
        updated = []
        for index, item in enumerate(batch):
            task = self.tasks[int(item["id"])]
            task.update(_task_fields(item), updated_at=max(self._stamp(), task["updated_at"]))
            updated.append((task, str(_rid(item, index))))
        return updated

    def _task_problems(self, item: Any, *, creating: bool) -> list[dict[str, str]]:
        if not isinstance(item, Mapping):
            return [_error("InvalidType", "", "This value should be of type object.")]
        problems = []
        if not creating and not isinstance(item.get("id"), int):
            problems.append(_error("NotBlank", "id", "This value should not be blank."))
        if creating or "text" in item:
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                problems.append(_error("NotBlank", "text", "This value should not be blank."))
        if creating or "complete_till" in item:
            if not isinstance(item.get("complete_till"), int) or isinstance(item.get("complete_till"), bool):
                problems.append(_error("InvalidType", "complete_till", "This value should be of type int."))
        for key in ("task_type_id", "duration", "responsible_user_id", "entity_id"):
            if key in item and (not isinstance(item[key], int) or isinstance(item[key], bool)):
                problems.append(_error("InvalidType", key, "This value should be of type int."))
        if "responsible_user_id" in item and item["responsible_user_id"] not in self.users:
            problems.append(_error("NotSupportedChoice", "responsible_user_id", "User not found."))
        entity_type = item.get("entity_type")
        if "entity_id" in item and entity_type is None:
            problems.append(_error("NotBlank", "entity_type", "entity_type is required with entity_id."))
        if entity_type is not None and entity_type not in ENTITY_TYPES:
            problems.append(_error("NotSupportedChoice", "entity_type", INVALID_CHOICE))
        if entity_type == "leads" and isinstance(item.get("entity_id"), int) and item["entity_id"] not in self.leads:
            problems.append(_error("NotFound", "entity_id", f"Lead {item['entity_id']} not found"))
        if item.get("is_completed") is True and not isinstance(item.get("result"), Mapping):
            # "To complete a task, properties result and is_completed should be passed" (edit-task doc).
            problems.append(_error("NotBlank", "result", "result is required to complete a task."))
        return problems

    def add_unsorted_forms(self, items: Any) -> list[tuple[dict[str, Any], str]]:
        items = _require_batch(items)
        errors = []
        for index, item in enumerate(items):
            problems = []
            if not isinstance(item, Mapping):
                problems.append(_error("InvalidType", "", "This value should be of type object."))
            else:
                for key in ("source_uid", "source_name"):
                    if not isinstance(item.get(key), str) or not item[key]:
                        problems.append(_error("NotBlank", key, "This value should not be blank."))
                if "pipeline_id" in item and item["pipeline_id"] not in self.pipelines:
                    problems.append(_error("NotSupportedChoice", "pipeline_id", "Pipeline not found."))
            if problems:
                errors.append({"request_id": str(_rid(item, index)), "errors": problems})
        if errors:
            raise ValidationFailed(errors)
        created = []
        for index, item in enumerate(items):
            uid = f"sandbox-{self._new_id(self.leads):x}"
            pipeline = self.pipelines.get(item.get("pipeline_id")) or self.default_pipeline()
            incoming = next((s for s in pipeline["statuses"] if s.get("type") == 1), pipeline["statuses"][0])
            embedded = item.get("_embedded") or {}
            leads = [
                self._add_lead({**raw, "status_id": incoming["id"], "pipeline_id": pipeline["id"]})
                for raw in embedded.get("leads") or [{"name": item["source_name"]}]
            ]
            contacts = [self._add_contact(raw, unsorted_uid=uid) for raw in embedded.get("contacts") or []]
            for contact in contacts:
                for lead in leads:
                    self.link(contact["id"], lead["id"])
            record = {
                "uid": uid,
                "source_uid": item["source_uid"],
                "source_name": item["source_name"],
                "category": "forms",
                "pipeline_id": pipeline["id"],
                "metadata": item.get("metadata") or {},
                "lead_ids": [lead["id"] for lead in leads],
                "contact_ids": [c["id"] for c in contacts],
                "accepted": False,
                "created_at": self._stamp(),
            }
            self.unsorted[uid] = record
            created.append((record, str(_rid(item, index))))
        return created

    def accept_unsorted(self, uid: str) -> dict[str, Any] | None:
        record = self.unsorted.get(uid)
        if record is None:
            return None
        record["accepted"] = True
        for contact_id in record["contact_ids"]:
            self.contacts[contact_id]["_unsorted_uid"] = None
        return record


def _rid(item: Any, index: int) -> Any:
    return item.get("request_id", index) if isinstance(item, Mapping) else index


def _require_batch(items: Any) -> list[Any]:
    if not isinstance(items, list) or not items:
        raise ValidationFailed([])  # the HTTP layer answers "Request data can not be empty"
    return items


def _task_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    editable = ("text", "complete_till", "task_type_id", "duration", "responsible_user_id", "entity_id")
    fields = {k: item[k] for k in (*editable, "entity_type", "is_completed") if k in item}
    if "result" in item:
        fields["result"] = dict(item["result"]) if isinstance(item["result"], Mapping) else item["result"]
    return fields


def _note_problems(item: Any, entity_id: int | None, leads: Mapping[int, Any]) -> list[dict[str, str]]:
    if not isinstance(item, Mapping):
        return [_error("InvalidType", "", "This value should be of type object.")]
    problems = []
    if item.get("note_type") not in NOTE_TYPES:
        problems.append(_error("NotSupportedChoice", "note_type", INVALID_CHOICE))
    params = item.get("params")
    if item.get("note_type") == "common" and not (isinstance(params, Mapping) and isinstance(params.get("text"), str)):
        problems.append(_error("NotBlank", "params.text", "This value should not be blank."))
    target = entity_id if entity_id is not None else item.get("entity_id")
    if not isinstance(target, int) or isinstance(target, bool):
        problems.append(_error("NotBlank", "entity_id", "This value should not be blank."))
    elif target not in leads:
        problems.append(_error("NotFound", "entity_id", f"Lead {target} not found"))
    return problems


def _searchable(contact: Mapping[str, Any]) -> Iterable[str]:
    yield str(contact["name"]).lower()
    yield str(contact["first_name"]).lower()
    yield str(contact["last_name"]).lower()
    for field in contact["custom_fields_values"] or []:
        for value in field.get("values") or []:
            yield str(value.get("value", "")).lower()
