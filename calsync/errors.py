"""The error contract between reconcilers and the processing pipeline.

A reconciler (Zoom, Kommo, …) raises a `SyncError` subclass to tell the pipeline whether trying again
later can help (`retryable`) and, when the remote service said so, how long to wait (`retry_after`).
Any other exception is treated as retryable: a bug fixed and deployed heals on the next attempt.
"""

from __future__ import annotations


class SyncError(Exception):
    """A failure talking to an external service, classified for the retry policy."""

    retryable: bool = True

    def __init__(self, message: str, *, retry_after: float | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable


class PermanentSyncError(SyncError):
    """Trying again without a human changing something (a setting, a token, a deal) cannot help."""

    retryable = False


class BookingBusy(SyncError):
    """Another worker is syncing the same booking right now; try again shortly."""

    def __init__(self, message: str = "another worker is syncing this booking", *, retry_after: float = 15):
        super().__init__(message, retry_after=retry_after)
