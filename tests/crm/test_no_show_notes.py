"""crm.no_show.pending_no_show_note: one note per mark and per undo, and links written before it."""

from datetime import UTC, datetime

import pytest

from bookings.models import Booking
from crm.no_show import pending_no_show_note

T1 = datetime(2026, 12, 2, 15, 40, 59, tzinfo=UTC)
U1 = datetime(2026, 12, 2, 16, 5, tzinfo=UTC)
T2 = datetime(2026, 12, 2, 16, 19, 58, tzinfo=UTC)
TOKEN, LEAD = "3f9a1c2b4d", 18734521


def keys(*kinds: str) -> dict:
    return {f"{kind}:{TOKEN}@{LEAD}": n for n, kind in enumerate(kinds, start=1)}


@pytest.mark.parametrize(
    ("marked", "undone", "written", "expected"),
    [
        (None, None, (), None),
        (T1, None, (), ("no_show-20261202T154059Z", "note_no_show")),
        (T1, None, ("no_show-20261202T154059Z",), None),
        (T1, U1, ("no_show-20261202T154059Z",), ("no_show_undone-20261202T160500Z", "note_no_show_undone")),
        (T1, U1, (), None),  # undone before its mark got a note: nothing to undo in the deal
        (
            T2,
            U1,
            ("no_show-20261202T154059Z", "no_show_undone-20261202T160500Z"),
            ("no_show-20261202T161958Z", "note_no_show"),
        ),
        # Links from before per-mark kinds: the plain notes still count for the state they were written for.
        (T1, None, ("no_show",), None),
        (T1, U1, ("no_show", "no_show_undone"), None),
        (T2, U1, ("no_show", "no_show_undone"), ("no_show-20261202T161958Z", "note_no_show")),
        (T1, U1, ("no_show",), ("no_show_undone-20261202T160500Z", "note_no_show_undone")),
    ],
)
def test_the_note_still_to_write(marked, undone, written, expected):
    booking = Booking(no_show_at=marked, no_show_undone_at=undone)
    assert pending_no_show_note(booking, keys(*written), TOKEN, LEAD) == expected


def test_another_bookings_or_deals_notes_do_not_count():
    booking = Booking(no_show_at=T1)
    others = {f"no_show-20261202T154059Z:othertoken@{LEAD}": 1, f"no_show-20261202T154059Z:{TOKEN}@999": 2}
    assert pending_no_show_note(booking, others, TOKEN, LEAD) == ("no_show-20261202T154059Z", "note_no_show")
