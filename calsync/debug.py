"""Error reports that never show secrets, whatever DEBUG says."""

from __future__ import annotations

from django.views.debug import SafeExceptionReporterFilter


class AlwaysCleansingFilter(SafeExceptionReporterFilter):
    """Django's filter, also active with DEBUG on.

    Django hides `@sensitive_variables` and POST parameters only when DEBUG is off ("your site is not
    safe anyway"). But a local `.env` with DEBUG on can end up on a reachable port, and the technical
    500 page then lists `verify_signature`'s locals: the signing key, enough to forge deliveries.
    """

    def is_active(self, request) -> bool:
        return True
