"""The HTTP plumbing under both emulators: a parsed request, a response (or DROP: no answer at all),
routes with path parameters, a sliding-window rate limiter, and a keep-alive stdlib server whose handler
hands every request to an `Emulator`. Stdlib only.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY_BYTES = 5 * 1024 * 1024


class BadRequestBody(ValueError):
    """The body is not the JSON the route needs; each emulator turns it into its API's own 400."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    client_host: str
    user: Any = None  # who the API's auth check found (set by an emulator's gate)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        """Every value of a repeated parameter; ``filter[id][]=1&filter[id][]=2`` and ``filter[id]=1`` alike."""
        return [*self.query.get(name + "[]", []), *self.query.get(name, [])]

    def json(self) -> Any:
        if not self.body.strip():
            raise BadRequestBody("empty body")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestBody(f"body is not JSON: {exc}") from None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


# Returned instead of a Response: close the connection without answering (the response was "lost").
DROP = object()


def json_response(status: int, data: Any, content_type: str = "application/json", **headers: str) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False).encode(), content_type, dict(headers))


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str  # "POST /api/v4/leads/{id}/notes": the key request counts are kept under
    handler: Callable[..., Response]


def route(method: str, template: str, handler: Callable[..., Response]) -> Route:
    """``/v2/meetings/{meeting_id}`` → a regex whose named groups become the handler's keyword arguments.

    ``{name:d}`` matches digits only, so ``/leads/{lead_id:d}`` never swallows ``/leads/notes``.
    """
    regex = re.escape(template).replace(r"\{", "{").replace(r"\}", "}").replace(r"\:", ":")
    regex = re.sub(r"\{(\w+):d\}", r"(?P<\1>[0-9]+)", regex)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    name = re.sub(r"\{(\w+):d\}", r"{\1}", template)
    return Route(method, re.compile(f"^{regex}$"), f"{method} {name}", handler)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


class SlidingWindow:
    """At most `limit` accepted events in any `window` seconds (`limit` 0 = unlimited)."""

    def __init__(self, limit: int, window: float = 1.0):
        self.limit, self.window = limit, window
        self._events: deque[float] = deque()

    def allow(self, now: float) -> bool:
        if self.limit <= 0:
            return True
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        if len(self._events) >= self.limit:
            return False
        self._events.append(now)
        return True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # bursts of hundreds of connections in the benchmark


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs: a client's pooled connection is reused
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle + the client's delayed ACK add ~40 ms.
    disable_nagle_algorithm = True
    emulator: Any  # an Emulator, set per server by Emulator.start()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the emulator keeps its own request log; stderr stays quiet for test output

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            client_host=self.client_address[0],
        )
        response = self.emulator.handle(req)
        if response is DROP:
            self.close_connection = True  # no status line, no headers: the client sees the connection die
            return
        assert isinstance(response, Response)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status not in (204, 304):
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle


def make_handler(emulator: Any) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to one emulator (the stdlib server instantiates it per connection)."""
    return type("Handler", (_Handler,), {"emulator": emulator})
