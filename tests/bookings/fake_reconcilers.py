"""Reconcilers for pipeline tests: they record calls and fail on demand."""

from calsync.errors import PermanentSyncError, SyncError

CALLS: list[tuple[str, int]] = []
FAIL: dict[str, Exception] = {}


def reset() -> None:
    CALLS.clear()
    FAIL.clear()


def first(booking):
    CALLS.append(("first", booking.pk))
    if "first" in FAIL:
        raise FAIL["first"]
    return "first ok"


def second(booking):
    CALLS.append(("second", booking.pk))
    if "second" in FAIL:
        raise FAIL["second"]
    return None


__all__ = ["CALLS", "FAIL", "PermanentSyncError", "SyncError", "first", "reset", "second"]
