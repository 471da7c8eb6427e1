"""`POST /webhooks/calendly/`: verify the signature on the raw bytes, store, enqueue, answer.

Answers (Calendly retries anything that is not 2xx for 24 hours, so 4xx is only for what a retry
cannot fix, and everything we accepted is stored before we answer):
- 202 stored and queued; 200 a redelivery of something already stored, or a kind calsync ignores;
- 400 signed but not a Calendly delivery (stored as `failed` with the raw body, for a human);
- 401 missing, malformed, wrong or stale signature (nothing stored); 413 body over the size limit;
- 503 no signing key configured (refuses everything, so nothing unverified gets in).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings.intake import IntakeResult, Outcome, store_delivery
from bookings.signature import HEADER, SignatureError, verify_signature

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


def read_limited_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing anything over `limit` bytes without reading it all into memory.

    A chunked request has no Content-Length, and Django then reads its body as empty. When the
    server de-chunks and ends the stream itself (`wsgi.input_terminated`, as gunicorn does), the body
    is read from that stream until its end, still stopping one byte past the limit.
    """
    environ = request._request.META
    declared = environ.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    stream = request._request
    if not declared and environ.get("wsgi.input_terminated") and environ.get("wsgi.input") is not None:
        stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while size <= limit:  # a stream may return less than asked before its end
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise BodyTooLarge
    return b"".join(chunks)


def _error(message: str, code: int, **extra) -> Response:
    return Response({"error": message, **extra}, status=code)


def answer(result: IntakeResult) -> Response:
    """The HTTP answer to a delivery intake stored (see the module docstring for the codes)."""
    event = result.event
    if result.outcome is Outcome.UNUSABLE:
        return _error(result.reason, status.HTTP_400_BAD_REQUEST, id=event.pk)
    if result.outcome is Outcome.DUPLICATE:
        return Response({"id": event.pk, "status": event.status, "duplicate": True}, status=status.HTTP_200_OK)
    if result.outcome is Outcome.IGNORED:
        return Response({"id": event.pk, "status": event.status}, status=status.HTTP_200_OK)
    return Response({"id": event.pk, "status": event.status}, status=status.HTTP_202_ACCEPTED)


class JSONOnly(BaseContentNegotiation):
    """Every answer is JSON, whatever the sender's Accept says: no header parsing per delivery."""

    def select_parser(self, request, parsers):
        return None  # the body is read raw: its bytes are what the signature covers

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class CalendlyWebhookView(APIView):
    authentication_classes: list = []  # the signature is the authentication; no session, so no CSRF
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly
    http_method_names = ["post", "options"]

    @method_decorator(sensitive_variables("keys"))
    def post(self, request: Request) -> Response:
        try:
            raw = read_limited_body(request, settings.CALENDLY_MAX_BODY_BYTES)
        except BodyTooLarge:
            logger.warning("calendly webhook: body over %s bytes refused", settings.CALENDLY_MAX_BODY_BYTES)
            return _error(
                f"body larger than {settings.CALENDLY_MAX_BODY_BYTES} bytes", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
            )

        keys = settings.CALENDLY_SIGNING_KEYS
        if keys:
            try:
                verify_signature(
                    raw,
                    request.headers.get(HEADER),
                    keys,
                    now=time.time(),
                    tolerance_s=settings.CALENDLY_SIGNATURE_TOLERANCE,
                )
            except SignatureError as exc:
                # Never the body or the key: only why, and from where.
                logger.warning("calendly webhook refused: %s (from %s)", exc.reason, request.META.get("REMOTE_ADDR"))
                return _error(f"invalid signature: {exc.reason}", status.HTTP_401_UNAUTHORIZED)
        elif not settings.CALENDLY_ALLOW_UNSIGNED:
            logger.error("calendly webhook refused: CALENDLY_SIGNING_KEY is not set")
            return _error(
                "webhook not configured: set CALENDLY_SIGNING_KEY (see README)", status.HTTP_503_SERVICE_UNAVAILABLE
            )

        return answer(store_delivery(raw))
