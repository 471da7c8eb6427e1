"""A read-only HTML page of one deal in the Kommo emulator, at the path where Kommo's web app shows a deal
(``/leads/detail/<id>``, the link calsync's admin builds): its name, stage, contacts, notes and tasks, so a
newcomer sees in the sandbox what a salesperson would see in Kommo. Every value is HTML-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

from sandbox.kommo_state import KommoState
from sandbox.wire import Response

STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.5rem;margin-bottom:.2rem}.meta{color:#555}.banner{background:#fff3cd;padding:.4rem .7rem}"
    "section{margin-top:1.5rem}li{margin:.5rem 0}pre{white-space:pre-wrap;margin:.2rem 0;font:inherit}"
    ".when{color:#666;font-size:.85rem}.done{color:#2a7a2a}"
)


def render(data: KommoState, lead_id: int) -> Response:
    """The deal's page, or a 404 page when the emulator has no such deal."""
    lead = data.leads.get(lead_id)
    if lead is None:
        body = f"<h1>No deal {lead_id}</h1><p>The Kommo emulator has no deal with this id.</p>"
        return _page(404, f"Deal {lead_id} not found", body)
    return _page(200, f"{lead['name'] or 'Deal'} — Kommo emulator", deal_html(data, lead))


def deal_html(data: KommoState, lead: Mapping[str, Any]) -> str:
    users = {uid: user["name"] or user["email"] for uid, user in data.users.items()}
    pipeline = data.pipelines.get(lead["pipeline_id"]) or {"name": str(lead["pipeline_id"]), "statuses": []}
    stage = next((s["name"] for s in pipeline["statuses"] if s["id"] == lead["status_id"]), str(lead["status_id"]))
    meta = (
        f"{escape(pipeline['name'])} · {escape(stage)} · budget {escape(str(lead['price']))} · responsible: "
        f"{escape(users.get(lead['responsible_user_id'], str(lead['responsible_user_id'])))}"
    )
    parts = [
        '<p class="banner">SANDBOX: the Kommo emulator, not the real Kommo. Read-only.</p>',
        f"<h1>{escape(lead['name'] or 'Deal')} <small>#{lead['id']}</small></h1>",
        f'<p class="meta">{meta}</p>',
        _section("Contacts", [_contact_html(data.contacts[c]) for c in lead["_contact_ids"] if c in data.contacts]),
        _section("Tasks", [_task_html(task, users) for task in _tasks_of(data, lead["id"])]),
        _section("Notes", [_note_html(note, users) for note in _notes_of(data, lead["id"])]),
    ]
    return "\n".join(parts)


def _tasks_of(data: KommoState, lead_id: int) -> list[dict[str, Any]]:
    tasks = [t for t in data.tasks.values() if t.get("entity_type") == "leads" and t.get("entity_id") == lead_id]
    return sorted(tasks, key=lambda t: (t.get("complete_till") or 0, t["id"]))


def _notes_of(data: KommoState, lead_id: int) -> list[dict[str, Any]]:
    notes = [n for n in data.notes.values() if n.get("entity_id") == lead_id]
    return sorted(notes, key=lambda n: (n.get("created_at") or 0, n["id"]), reverse=True)  # newest first


def _contact_html(contact: Mapping[str, Any]) -> str:
    values = [
        value.get("value", "")
        for field in contact.get("custom_fields_values") or []
        if field.get("field_code") in ("EMAIL", "PHONE")
        for value in field.get("values") or []
    ]
    details = f" — {escape(', '.join(str(v) for v in values))}" if values else ""
    return f"<li>{escape(contact['name'] or str(contact['id']))}{details}</li>"


def _task_html(task: Mapping[str, Any], users: Mapping[int, str]) -> str:
    state = '<span class="done">done</span>' if task.get("is_completed") else "open"
    who = users.get(task.get("responsible_user_id"), str(task.get("responsible_user_id")))
    result = task.get("result")
    outcome = f"<pre>Result: {escape(str(result.get('text', '')))}</pre>" if isinstance(result, Mapping) else ""
    return (
        f'<li><pre>{escape(str(task.get("text", "")))}</pre><span class="when">due {_when(task.get("complete_till"))}'
        f" · {state} · {escape(who)}</span>{outcome}</li>"
    )


def _note_html(note: Mapping[str, Any], users: Mapping[int, str]) -> str:
    params = note.get("params") or {}
    text = params.get("text") if isinstance(params.get("text"), str) else json.dumps(params, ensure_ascii=False)
    who = users.get(note.get("created_by"), str(note.get("created_by")))
    return (
        f'<li><span class="when">{_when(note.get("created_at"))} · {escape(who)} · {escape(str(note["note_type"]))}'
        f"</span><pre>{escape(text)}</pre></li>"
    )


def _section(title: str, items: list[str]) -> str:
    inner = f"<ul>{''.join(items)}</ul>" if items else "<p>none</p>"
    return f"<section><h2>{escape(title)}</h2>{inner}</section>"


def _when(stamp: Any) -> str:
    if not isinstance(stamp, int | float):
        return "—"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(status: int, title: str, body: str) -> Response:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(status, html.encode("utf-8"), "text/html; charset=utf-8")
