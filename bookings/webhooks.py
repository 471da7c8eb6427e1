"""`POST /webhooks/calendly/`: verify the signature on the raw bytes, store, enqueue, answer.

Answers (Calendly retries anything that is not 2xx for 24 hours, so 4xx is only for what a retry
cannot fix, and everything we accepted is stored before we answer):
- 202 stored and queued; 200 a redelivery of something already stored, or a kind calsync ignores;
- 400 signed but not a Calendly delivery (stored as `failed` with the raw body, for a human);
- 401 missing, malformed, wrong or stale signature (nothing stored); 413 body over the size limit;
- 503 no signing key configured (refuses everything, so nothing unverified gets in).
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings.calendly import PayloadError, decode_body, dedupe_key, parse_delivery_data
from bookings.models import WebhookEvent
from bookings.signature import HEADER, SignatureError, verify_signature
from bookings.state import is_handled_kind
from bookings.tasks import enqueue_processing
from calsync.metrics import count_event_stored, count_redelivery

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


class CalendlyWebhookView(APIView):
    authentication_classes: list = []  # the signature is the authentication; no session, so no CSRF
    permission_classes = [AllowAny]
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

        return store_delivery(raw)


def _bump_existing(key: str) -> WebhookEvent:
    WebhookEvent.objects.filter(dedupe_key=key).update(deliveries=F("deliveries") + 1)
    event = WebhookEvent.objects.get(dedupe_key=key)
    count_redelivery(event.kind)
    return event


def store_delivery(raw: bytes, *, source: str = WebhookEvent.Source.WEBHOOK) -> Response:
    """Store a verified delivery (de-duplicated) and queue it; build the HTTP answer."""
    data = None
    try:
        data = decode_body(raw)
        delivery = parse_delivery_data(data)
    except PayloadError as exc:
        kind = data.get("event") if isinstance(data, dict) and isinstance(data.get("event"), str) else ""
        event, _created = _create_or_existing(
            "invalid|" + hashlib.sha256(raw).hexdigest(),
            kind=kind[:100] or "(unreadable)",
            raw_body=raw,
            payload=data,
            status=WebhookEvent.Status.FAILED,
            last_error=f"not a usable Calendly delivery: {exc}",
            processed_at=timezone.now(),
            source=source,
        )
        logger.warning("calendly webhook: signed body stored as failed event %s: %s", event.pk, exc)
        return _error(f"not a usable Calendly delivery: {exc}", status.HTTP_400_BAD_REQUEST, id=event.pk)

    handled = is_handled_kind(delivery.kind)
    invitee = delivery.invitee
    fields = {
        "kind": delivery.kind,
        "raw_body": raw,
        "payload": data,
        "calendly_created_at": delivery.created_at,
        "invitee_uri": (invitee.uri if invitee else delivery.payload_uri or "")[:500],
        "event_uri": (invitee.event_uri if invitee else "")[:500],
        "invitee_email": (invitee.email if invitee else "")[:320],
        "source": source,
    }
    if handled:
        fields["next_attempt_at"] = timezone.now() + timedelta(seconds=settings.CALSYNC_ENQUEUE_GRACE)
    else:
        fields.update(
            status=WebhookEvent.Status.IGNORED,
            last_error=f"calsync does not act on {delivery.kind!r} deliveries",
            processed_at=timezone.now(),
        )
    key = dedupe_key(delivery) or "body|" + hashlib.sha256(raw).hexdigest()
    event, created = _create_or_existing(key, **fields)
    if not created:
        logger.info("calendly webhook: redelivery of event %s (%s)", event.pk, event.kind)
        return Response({"id": event.pk, "status": event.status, "duplicate": True}, status=status.HTTP_200_OK)
    if not handled:
        logger.info("calendly webhook: %s stored as ignored event %s", delivery.kind, event.pk)
        return Response({"id": event.pk, "status": event.status}, status=status.HTTP_200_OK)
    logger.info("calendly webhook: %s stored as event %s", delivery.kind, event.pk)
    return Response({"id": event.pk, "status": event.status}, status=status.HTTP_202_ACCEPTED)


def _create_or_existing(key: str, **fields) -> tuple[WebhookEvent, bool]:
    """Insert the event, or return the one already stored under the same key (a redelivery).

    The unique key settles races between two identical deliveries arriving at once, and redeliveries
    (rare): no look-up first, one transaction (event, task, counters) and one commit per new delivery.
    """
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(dedupe_key=key, **fields)
            if event.status == WebhookEvent.Status.RECEIVED:
                enqueue_processing(event.pk)
            count_event_stored(event.kind, event.source)
    except IntegrityError:
        return _bump_existing(key), False
    return event, True
