"""Typed Kommo errors, classified for the pipeline's retry policy (calsync.errors)."""

from __future__ import annotations

from typing import Any

from calsync.errors import PermanentSyncError, SyncError


class KommoError(SyncError):
    """Any failure talking to Kommo. `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.status = status


class KommoPermanentError(KommoError, PermanentSyncError):
    """Kommo refused the request; repeating it unchanged cannot help."""


class KommoAuthError(KommoPermanentError):
    """401: the token is wrong, expired or revoked (KOMMO_ACCESS_TOKEN)."""


class KommoReconnectNeeded(KommoAuthError):
    """The OAuth connection is broken (refresh refused): a human must reconnect Kommo in the admin."""


class KommoPaymentRequired(KommoPermanentError):
    """402: the Kommo account's paid or trial period has ended."""


class KommoForbidden(KommoPermanentError):
    """403 with a JSON body: the token's user lacks the rights for this call."""


class KommoIPBlocked(KommoPermanentError):
    """403 that is not JSON: Kommo blocked our IP after repeated rate-limit violations."""


class KommoNotFound(KommoPermanentError):
    """404: no such entity or endpoint."""


class KommoValidationError(KommoPermanentError):
    """400/422: Kommo rejected the data; `errors` holds its `validation-errors`."""

    def __init__(self, message: str, *, errors: list | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.errors = errors or []


class KommoRateLimited(KommoError):
    """429 that lasted longer than we wait inline; try again after `retry_after` seconds."""


class KommoServerError(KommoError):
    """5xx or a network failure on a call that is safe to repeat later."""


class KommoUncertainWrite(KommoError):
    """A write was sent but its outcome is unknown (5xx, timeout, dropped connection, unreadable answer)."""
