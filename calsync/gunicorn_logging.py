"""gunicorn's own log lines (access and error), redacted like calsync's and JSON when calsync's are.

gunicorn writes its access and error lines through its own handlers, outside settings.LOGGING: the
request line, query string and Referer of the Kommo OAuth callback (`?code=…&state=…`) reached the
access log verbatim, and with CALSYNC_LOG_FORMAT=json half of web.log was still plain text. Used from
gunicorn.conf.py (`logger_class`).
"""

from __future__ import annotations

import os

from gunicorn import glogging

from calsync.logctx import RedactFilter, json_formatter, redact_query_secrets


def json_logs() -> bool:
    """CALSYNC_LOG_FORMAT from the environment, else from calsync's settings (which also read `.env`)."""
    value = os.environ.get("CALSYNC_LOG_FORMAT")
    if value is None and os.environ.get("DJANGO_SETTINGS_MODULE"):
        try:
            from django.conf import settings

            value = settings.LOG_FORMAT
        except Exception:  # settings that cannot load fail the workers anyway, with a clearer message
            value = None
    return (value or "json").lower() != "plain"


class GunicornLogger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not getattr(handler, "_gunicorn", False):
                    continue
                if not any(isinstance(f, RedactFilter) for f in handler.filters):
                    handler.addFilter(RedactFilter())
                if json_logs():
                    handler.setFormatter(json_formatter())

    def atoms(self, resp, req, environ, request_time) -> dict:
        """The access-log fields, with OAuth values in the request line, query, Referer or environ masked."""
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact_query_secrets(v) if isinstance(v, str) else v for k, v in atoms.items()}
