"""A local Zoom REST v2 + Server-to-Server OAuth (https://developers.zoom.us/docs/api/meetings/): form-body token
requests with Basic auth, tokens that expire (401 code 124), meetings with 11-digit ids, PATCH/DELETE
answering 204 and 404 code 3001 once a meeting is gone, 404 code 1001 for unknown users, list pages with
``next_page_token`` and agendas cut to 250 characters, per-second limits and the 100-a-day create/update
cap per host whose 429 carries ``Retry-After`` as an ISO datetime.

    python -m sandbox.zoom_emulator --port 0 --seed-file seed.json       # prints its URL
    with ZoomEmulator.running(seed=…) as emu: …                           # in a thread, for tests
"""

from __future__ import annotations

import base64
import random
import secrets
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sandbox import saved_state
from sandbox.emulator import Emulator, Request, Response, Route, SlidingWindow, json_response, route
from sandbox.zoom_fields import ISO, _iso, validated_fields, zoom_error

AGENDA_LIST_CHARS = 250
LIST_KEYS = ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone", "agenda", "created_at")
LIST_KEYS += ("join_url",)
EXPIRES_AFTER = timedelta(days=30)  # "a one-time meeting ID will expire 30 days after the scheduled date"
CATEGORIES = {  # the SPEC's rate-limit labels
    "POST /v2/users/{user_id}/meetings": "Medium",
    "GET /v2/users/{user_id}/meetings": "Medium",
    "GET /v2/users/{user_id}": "Light",
    "GET /v2/meetings/{meeting_id}": "Light",
    "PATCH /v2/meetings/{meeting_id}": "Light",
    "DELETE /v2/meetings/{meeting_id}": "Light",
}
DEFAULT_SETTINGS = {
    "host_video": False,
    "participant_video": False,
    "join_before_host": False,
    "mute_upon_entry": False,
    "waiting_room": False,
    "approval_type": 2,
    "audio": "both",
    "auto_recording": "none",
}


class ZoomEmulator(Emulator):
    """A local Zoom API (S2S OAuth + meetings) for tests, benchmarks and the newcomer sandbox."""

    name = "zoom"
    DEFAULT_CONFIG = {
        "account_id": "sandbox-account",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "token_lifetime": 3599,
        "light_rps": 30,  # Pro plan; 0 switches a limit off
        "medium_rps": 20,
        "rate_window": 1.0,
        "qps_retry_after": 0,  # seconds; 0 = no Retry-After on per-second 429s (as zoom/skills documents)
        "daily_limit": 100,  # create/update requests per host user per UTC day
        "join_host": "https://us06web.zoom.us",
    }

    def reset_state(self, seed: Mapping[str, Any]) -> None:
        users = seed.get("users") or [{"id": "sandboxhost01", "email": "host@sandbox.example", "first_name": "Sandbox"}]
        self.users = {str(u["id"]): self._user(u) for u in users}
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.meetings: dict[int, dict[str, Any]] = {}
        self.deleted: dict[int, dict[str, Any]] = {}
        self.daily: dict[str, int] = {}
        self._page_tokens: dict[str, tuple[int, float]] = {}
        self.id_rng = random.Random(seed.get("id_seed", 1))  # noqa: S311 - reproducible ids, not secrets
        # Every meeting id handed out, kept across a reset: calsync may still hold it, so never again.
        self.issued_ids: set[int] = getattr(self, "issued_ids", set())
        self.on_configure()

    def on_configure(self) -> None:
        window = float(self.config["rate_window"])
        self._windows = {
            "Light": SlidingWindow(int(self.config["light_rps"]), window),
            "Medium": SlidingWindow(int(self.config["medium_rps"]), window),
        }

    def _user(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        first, last = raw.get("first_name", ""), raw.get("last_name", "")
        return {
            "id": str(raw["id"]),
            "first_name": first,
            "last_name": last,
            "display_name": raw.get("display_name") or f"{first} {last}".strip(),
            "email": raw["email"],
            "type": int(raw.get("type", 2)),
            "status": raw.get("status", "active"),
            "timezone": raw.get("timezone", "UTC"),
            "account_id": self.config["account_id"],
            "pmi": int(raw.get("pmi", 5550000000 + zlib.crc32(str(raw["id"]).encode()) % 10**9)),
            "role_id": "0",
            "verified": 1,
            "language": "en-US",
        }

    def build_routes(self) -> list[Route]:
        return [
            route("POST", "/oauth/token", self.issue_token),
            route("GET", "/v2/users/{user_id}", self.get_user),
            route("POST", "/v2/users/{user_id}/meetings", self.create_meeting),
            route("GET", "/v2/users/{user_id}/meetings", self.list_meetings),
            route("GET", "/v2/meetings/{meeting_id}", self.get_meeting),
            route("PATCH", "/v2/meetings/{meeting_id}", self.update_meeting),
            route("DELETE", "/v2/meetings/{meeting_id}", self.delete_meeting),
        ]

    # --- gate: bearer token, per-second limits ---------------------------------------------------------------

    def gate(self, req: Request, found: Route) -> Response | None:
        if found.name == "POST /oauth/token":
            return None
        scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
        expires_at = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires_at is None:
            return zoom_error(401, 124, "Invalid access token.")
        if self.now() >= expires_at:
            return zoom_error(401, 124, "Access token is expired.")
        category = CATEGORIES.get(found.name, "Light")
        if not self._windows[category].allow(self.now()):
            return self._qps_limited(category)
        return None

    def _qps_limited(self, category: str) -> Response:
        headers = {"X-RateLimit-Category": category, "X-RateLimit-Type": "QPS"}
        headers["X-RateLimit-Limit"] = str(self.config[f"{category.lower()}_rps"])
        if self.config["qps_retry_after"]:
            headers["Retry-After"] = str(self.config["qps_retry_after"])
        message = "You have reached the maximum per-second rate limit for this API. Try again later."
        return zoom_error(429, 429, message, **headers)

    def rate_limited(self, req: Request) -> Response:
        return self._qps_limited("Light")

    def server_error(self, status: int) -> Response:
        return zoom_error(status, status, "Internal Server Error" if status == 500 else "Service Unavailable")

    def bad_body(self, message: str) -> Response:
        return zoom_error(400, 300, "Request Body should be a valid JSON object.")

    def not_found(self, req: Request, allowed: list[str]) -> Response:
        if allowed:
            return zoom_error(405, 405, f"Method {req.method} not allowed")
        return zoom_error(404, 404, f"Invalid api {req.path}")

    def export_state(self) -> dict[str, Any]:
        return saved_state.export_zoom(self)

    def import_state(self, saved: Mapping[str, Any]) -> None:
        saved_state.import_zoom(self, saved)

    def control_action(self, action: str, method: str, body: Any) -> Response | None:
        if action == "expire_tokens" and method == "POST":
            now = self.now()
            self.tokens = {token: min(expiry, now) for token, expiry in self.tokens.items()}
            return json_response(200, {"expired": len(self.tokens)})
        if action == "delete_meeting" and method == "POST":  # a host deleted it in Zoom's web portal
            with self.lock:
                meeting = self.meetings.pop(int(body["id"]), None)
                if meeting is None:
                    return json_response(404, {"error": f"no meeting {body['id']}"})
                self.deleted[meeting["id"]] = {**meeting, "deleted_at": _iso(datetime.fromtimestamp(self.now(), UTC))}
            return json_response(200, {"ok": True})
        return None

    # --- OAuth -----------------------------------------------------------------------------------------------

    def issue_token(self, req: Request) -> Response:
        expected = f"{self.config['client_id']}:{self.config['client_secret']}".encode()
        scheme, _, credentials = (req.headers.get("Authorization") or "").partition(" ")
        try:
            given = base64.b64decode(credentials.strip(), validate=True) if scheme.lower() == "basic" else b""
        except ValueError:
            given = b""
        if not secrets.compare_digest(given, expected):
            return json_response(400, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
        # The form body, as RIVET and calsync send it; query-string parameters are not read (see docs).
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        if not form.get("grant_type"):
            return json_response(400, {"reason": "Missing grant type", "error": "invalid_request"})
        if form["grant_type"] != "account_credentials":
            return json_response(400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"})
        if form.get("account_id") != self.config["account_id"]:
            return json_response(400, {"reason": "Account does not exist", "error": "invalid_request"})
        token = "sandbox." + secrets.token_urlsafe(24)
        lifetime = int(self.config["token_lifetime"])
        self.tokens[token] = self.now() + lifetime
        self.tokens_issued += 1
        scope = "meeting:write:meeting:admin meeting:read:meeting:admin meeting:update:meeting:admin "
        scope += "meeting:delete:meeting:admin meeting:read:list_meetings:admin user:read:user:admin"
        api_url = f"http://{req.headers.get('Host', '127.0.0.1')}"
        body = {"access_token": token, "token_type": "bearer", "expires_in": lifetime, "scope": scope}
        return json_response(200, {**body, "api_url": api_url})

    # --- users -------------------------------------------------------------------------------------------------

    def _find_user(self, user_id: str) -> dict[str, Any] | None:
        if user_id == "me":
            return next(iter(self.users.values()))
        if user_id in self.users:
            return self.users[user_id]
        wanted = user_id.lower()
        return next((u for u in self.users.values() if u["email"].lower() == wanted), None)

    def get_user(self, req: Request, user_id: str) -> Response:
        user = self._find_user(user_id)
        if user is None:
            return zoom_error(404, 1001, f"User does not exist: {user_id}.")
        return json_response(200, user)

    # --- meetings ----------------------------------------------------------------------------------------------

    def _live(self, meeting_id: str) -> dict[str, Any] | None:
        meeting = self.meetings.get(int(meeting_id)) if meeting_id.isdigit() else None
        if meeting is None:
            return None
        start = datetime.strptime(meeting["start_time"], ISO).replace(tzinfo=UTC)
        if datetime.fromtimestamp(self.now(), UTC) > start + EXPIRES_AFTER:
            return None  # expired: Zoom answers 3001 "…is not found or has expired"
        return meeting

    def _daily_key(self, user: Mapping[str, Any]) -> str:
        return f"{user['id']} {datetime.fromtimestamp(self.now(), UTC):%Y-%m-%d}"

    def _daily_limited(self, user: Mapping[str, Any]) -> Response | None:
        limit = int(self.config["daily_limit"])
        if not limit or self.daily.get(self._daily_key(user), 0) < limit:
            return None
        midnight = datetime.fromtimestamp(self.now(), UTC).replace(hour=0, minute=0, second=0) + timedelta(days=1)
        message = (
            f"You have exceeded the daily rate limit ({limit}) of Meeting Create/Update API requests permitted "
            "for this particular user. You may resume these requests at GMT 00:00:00."
        )
        headers = {"Retry-After": _iso(midnight), "X-RateLimit-Type": "Daily-limit", "X-RateLimit-Category": "Medium"}
        headers.update({"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"})
        return zoom_error(429, 429, message, **headers)

    def _new_id(self) -> int:
        while True:
            candidate = self.id_rng.randrange(80_000_000_000, 99_999_999_999)  # 11 digits, past 32 bits
            if candidate not in self.meetings and candidate not in self.deleted and candidate not in self.issued_ids:
                self.issued_ids.add(candidate)
                return candidate

    def _with_urls(self, meeting: Mapping[str, Any]) -> dict[str, Any]:
        host = self.config["join_host"]
        start_url = f"{host}/s/{meeting['id']}?zak=sandbox-{secrets.token_urlsafe(12)}"  # fresh on every read
        return {**meeting, "start_url": start_url}

    def create_meeting(self, req: Request, user_id: str) -> Response:
        user = self._find_user(user_id)
        if user is None:
            return zoom_error(404, 1001, f"User {user_id} not exist or not belong to this account.")
        limited = self._daily_limited(user)
        if limited is not None:
            return limited
        fields = validated_fields(req.json(), creating=True, now=self.now())
        if isinstance(fields, Response):
            return fields
        meeting_id = self._new_id()
        password = fields.pop("password", None) or f"{self.id_rng.randrange(10**5, 10**6)}"
        meeting = {
            "uuid": base64.b64encode(self.id_rng.randbytes(16)).decode(),
            "id": meeting_id,
            "host_id": user["id"],
            "host_email": user["email"],
            "assistant_id": "",
            "topic": "Zoom meeting",
            "type": 2,
            "status": "waiting",
            "duration": 60,
            "timezone": user["timezone"],
            "agenda": "",
            "created_at": _iso(datetime.fromtimestamp(self.now(), UTC)),
            "join_url": f"{self.config['join_host']}/j/{meeting_id}?pwd={secrets.token_urlsafe(16)}",
            "password": password,
            "h323_password": password,
            "pstn_password": password,
            "encrypted_password": secrets.token_urlsafe(16),
            "pre_schedule": False,
            **fields,
            "settings": {**DEFAULT_SETTINGS, **(fields.get("settings") or {})},
        }
        self.meetings[meeting_id] = meeting
        self.daily[self._daily_key(user)] = self.daily.get(self._daily_key(user), 0) + 1
        return json_response(201, self._with_urls(meeting))

    def get_meeting(self, req: Request, meeting_id: str) -> Response:
        meeting = self._live(meeting_id)
        if meeting is None:
            return zoom_error(404, 3001, f"Meeting {meeting_id} is not found or has expired.")
        return json_response(200, self._with_urls(meeting))

    def update_meeting(self, req: Request, meeting_id: str) -> Response:
        meeting = self._live(meeting_id)
        if meeting is None:
            return zoom_error(404, 3001, f"A meeting with this {meeting_id} is not found or has expired.")
        host = self.users.get(meeting["host_id"], {"id": meeting["host_id"]})
        limited = self._daily_limited(host)
        if limited is not None:
            return limited
        fields = validated_fields(req.json(), creating=False, now=self.now())
        if isinstance(fields, Response):
            return fields
        settings = {**meeting["settings"], **(fields.pop("settings", None) or {})}
        meeting.update(fields, settings=settings)
        self.daily[self._daily_key(host)] = self.daily.get(self._daily_key(host), 0) + 1
        return Response(204)

    def delete_meeting(self, req: Request, meeting_id: str) -> Response:
        meeting = self._live(meeting_id)
        if meeting is None:
            return zoom_error(404, 3001, f"Meeting with this {meeting_id} is not found or has expired.")
        del self.meetings[meeting["id"]]
        self.deleted[meeting["id"]] = {**meeting, "deleted_at": _iso(datetime.fromtimestamp(self.now(), UTC))}
        return Response(204)

    def list_meetings(self, req: Request, user_id: str) -> Response:
        user = self._find_user(user_id)
        if user is None:
            return zoom_error(404, 1001, f"User does not exist: {user_id}.")
        kind = req.arg("type") or "scheduled"
        now = datetime.fromtimestamp(self.now(), UTC)
        chosen = []
        for meeting in sorted(self.meetings.values(), key=lambda m: (m["start_time"], m["id"])):
            if meeting["host_id"] != user["id"] or self._live(str(meeting["id"])) is None:
                continue
            start = datetime.strptime(meeting["start_time"], ISO).replace(tzinfo=UTC)
            end = start + timedelta(minutes=meeting["duration"])
            if kind == "live" or (kind in ("upcoming", "upcoming_meetings") and end < now):
                continue
            if kind == "previous_meetings" and start >= now:
                continue
            day = start.strftime("%Y-%m-%d")
            if (req.arg("from") and day < req.arg("from")) or (req.arg("to") and day > req.arg("to")):
                continue
            chosen.append(meeting)
        page_size = min(max(int(req.arg("page_size") or 30), 1), 300)
        offset = 0
        token = req.arg("next_page_token")
        if token:
            offset, expires = self._page_tokens.get(token, (0, 0.0))
            if self.now() >= expires:
                return zoom_error(400, 300, "The next page token is invalid or expired.")
        page = chosen[offset : offset + page_size]
        next_token = ""
        if offset + page_size < len(chosen):
            next_token = secrets.token_urlsafe(24)
            self._page_tokens[next_token] = (offset + page_size, self.now() + 15 * 60)
        items = [{k: m[k] for k in LIST_KEYS} | {"agenda": m["agenda"][:AGENDA_LIST_CHARS]} for m in page]
        body = {
            "page_size": page_size,
            "total_records": len(chosen),
            "page_count": max(-(-len(chosen) // page_size), 1),
            "page_number": offset // page_size + 1,
            "next_page_token": next_token,
            "meetings": items,
        }
        return json_response(200, body)

    # --- state for assertions -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = self.now()
        return {
            "meetings": list(self.meetings.values()),
            "deleted_meetings": list(self.deleted.values()),
            "users": list(self.users.values()),
            "tokens_issued": self.tokens_issued,
            "tokens_valid": sum(1 for expiry in self.tokens.values() if expiry > now),
            "daily_counts": dict(self.daily),
        }


if __name__ == "__main__":
    ZoomEmulator.main()
