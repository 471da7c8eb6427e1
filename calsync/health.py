"""Liveness probe. No data, no auth, no secrets.

Answered by a middleware placed first, before host validation and the HTTPS redirect: container and
load-balancer probes call it by IP over plain HTTP from inside, which ALLOWED_HOSTS would refuse.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

HEALTH_PATH = "/healthz"


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return healthz(request)
        return self.get_response(request)
