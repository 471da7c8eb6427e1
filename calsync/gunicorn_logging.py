"""gunicorn's own log lines (access and error), redacted like calsync's and JSON when calsync's are.

gunicorn writes its access and error lines through its own handlers, outside settings.LOGGING: the
request line, query string and Referer of the Kommo OAuth callback (`?code=…&state=…`) reached the
access log verbatim, and with CALSYNC_LOG_FORMAT=json half of web.log was still plain text. Used from
gunicorn.conf.py (`logger_class`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

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
        """The access-log fields, with OAuth values in the request line, query, Referer or environ masked.

        Only the fields the access-log format prints are masked: gunicorn's atoms also carry every request
        header, response header and environ entry (~60 strings), and running the pattern over all of them
        was ~14% of the web process's CPU for each acknowledged webhook.
        """
        atoms = super().atoms(resp, req, environ, request_time)
        for key in printed_atoms(self.cfg.access_log_format):
            value = atoms.get(key)
            if isinstance(value, str):
                atoms[key] = redact_query_secrets(value)
        return atoms


@lru_cache(maxsize=8)
def printed_atoms(log_format: str) -> frozenset[str]:
    """The atom names an access-log format uses, as gunicorn looks them up (`{header}i` in lower case)."""
    names = re.findall(r"%\(([^)]+)\)", log_format)
    return frozenset(name.lower() if name.startswith("{") else name for name in names)
