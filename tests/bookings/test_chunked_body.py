"""A chunked delivery (no Content-Length) is read in full, still bounded by the size limit."""

import io
import json

import pytest
from django.test.client import ClientHandler

from bookings.models import WebhookEvent
from tests.conftest import WEBHOOK_URL, load_fixture, sign

pytestmark = pytest.mark.django_db


class TrickleStream(io.BytesIO):
    """A de-chunked body as a WSGI server hands it over: short reads, then the end."""

    def read(self, size=-1):
        return super().read(min(size, 1000) if size and size > 0 else size)


def _post_chunked(body: bytes, *, signature: str, terminated: bool = True) -> tuple[int, dict]:
    """Call the real WSGI application the way gunicorn does for `Transfer-Encoding: chunked`."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": WEBHOOK_URL,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",  # and no CONTENT_LENGTH
        "HTTP_HOST": "localhost",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_CALENDLY_WEBHOOK_SIGNATURE": signature,
        "wsgi.input": TrickleStream(body),
        "wsgi.input_terminated": terminated,
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    # The test client's handler: Django's own WSGIRequest over this environ, without closing the
    # test's database connection at the end of the request as a real server would.
    response = ClientHandler(enforce_csrf_checks=False)(environ)
    return response.status_code, json.loads(response.content or b"{}")


def test_signed_chunked_delivery_is_accepted_whole(django_capture_on_commit_callbacks):
    body = load_fixture("calendly/invitee_created.json")
    assert len(body) > 1000  # several reads
    with django_capture_on_commit_callbacks(execute=False):
        status, answer = _post_chunked(body, signature=sign(body))
    assert status == 202, answer
    assert bytes(WebhookEvent.objects.get(pk=answer["id"]).raw_body) == body


def test_chunked_delivery_over_the_limit_is_413(settings):
    settings.CALENDLY_MAX_BODY_BYTES = 4096
    body = b" " * 4097
    status, _ = _post_chunked(body, signature=sign(body))
    assert status == 413
    assert not WebhookEvent.objects.exists()


def test_chunked_delivery_at_the_limit_is_read(settings, django_capture_on_commit_callbacks):
    body = load_fixture("calendly/invitee_created.json")
    settings.CALENDLY_MAX_BODY_BYTES = len(body)
    with django_capture_on_commit_callbacks(execute=False):
        status, _ = _post_chunked(body, signature=sign(body))
    assert status == 202


def test_a_server_that_does_not_end_the_stream_is_not_read_past_its_length():
    """Without `wsgi.input_terminated` reading to the end could wait forever: Django's empty body stands."""
    body = load_fixture("calendly/invitee_created.json")
    status, _ = _post_chunked(body, signature=sign(body), terminated=False)
    assert status == 401  # the empty body does not match the signature: refused, nothing stored
    assert not WebhookEvent.objects.exists()
