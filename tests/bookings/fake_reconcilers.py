"""Reconcilers for pipeline tests: they record calls and fail on demand.

Their state lives in a `FakeReconcilers` made afresh for each test by the `fake_reconcilers` fixture
(tests/conftest.py). For that test only, the fixture plugs the object's bound methods in as `first` and
`second` of this module, so that `CALSYNC_RECONCILERS` can name them by dotted path as it names the real
ones. Nothing carries over from one test to the next.
"""

from __future__ import annotations

FIRST = "tests.bookings.fake_reconcilers.first"
SECOND = "tests.bookings.fake_reconcilers.second"


class FakeReconcilers:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        # Step name → the exception that step raises until the test removes it.
        self.fail: dict[str, Exception] = {}

    def _run(self, name: str, booking) -> None:
        self.calls.append((name, booking.pk))
        if name in self.fail:
            raise self.fail[name]

    def first(self, booking) -> str:
        self._run("first", booking)
        return "first ok"

    def second(self, booking) -> None:
        self._run("second", booking)
