"""Which no-show note a booking's deal still needs: one per mark and one per undo, in any order.

A no-show can be marked, undone and marked again; each of those writes its own note. A note's kind
carries the moment it is about (`no_show-20261202T154059Z`, `no_show_undone-…`), so marking again
later is a new note while processing the same delivery twice is not.

Links written before notes carried that moment hold the plain kinds `no_show` / `no_show_undone`
(one each at most). They still count for the state they were written for: the plain mark note
covers the current mark while nothing newer was written, and likewise the plain undo note.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bookings.models import Booking

MARK, UNDO = "no_show", "no_show_undone"


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def pending_no_show_note(booking: Booking, note_ids: dict, token: str, lead_id: int) -> tuple[str, str] | None:
    """(note kind, template) still to write to `lead_id` for the booking's no-show state, or None."""
    if booking.no_show_at is None:
        return None
    suffix = f":{token}@{lead_id}"
    written = {key[: -len(suffix)] for key in note_ids if key.endswith(suffix)}
    stamped = any(kind.startswith((f"{MARK}-", f"{UNDO}-")) for kind in written)
    if booking.is_no_show:
        kind = f"{MARK}-{_stamp(booking.no_show_at)}"
        covered_by_plain = MARK in written and UNDO not in written and not stamped
        return None if kind in written or covered_by_plain else (kind, "note_no_show")
    # Undone: only worth a note when the mark it undoes got one.
    if not (MARK in written or any(kind.startswith(f"{MARK}-") for kind in written)):
        return None
    when = booking.no_show_undone_at or booking.no_show_at
    kind = f"{UNDO}-{_stamp(when)}"
    covered_by_plain = UNDO in written and not stamped
    return None if kind in written or covered_by_plain else (kind, "note_no_show_undone")
