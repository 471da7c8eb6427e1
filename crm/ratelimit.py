"""A request-rate limit shared by every process through database rows: a sliding log.

"Not more than N requests in any `window` seconds" is kept with N rows, one per request of the last
window. Each row holds the time (unix microseconds) it is free again. A request takes a row that is free
now and writes back its own time plus the window; when none is free it sleeps until the first one frees
and looks again. So the rows always hold the N latest requests, and a request never goes before the N-th
request before it is a full window old: no window holds more than N. An idle system sends up to N
requests at once (a single booking's lookups and writes don't wait for each other); a burst runs at N
per window.

A row's time is only when its request may leave; Kommo counts the request when it arrives, somewhere
between then and its answer. Stamping rows at sending alone would need a guess at that delay (a busy
machine can hold a request back by tens of milliseconds after a burst of 7 were let go at once, and Kommo
then counts 8 in a second). So the answer settles it: `answered()` moves the row to the answer's time plus
the API's window when the answer came later than `margin` allows. The next request on that row leaves
after Kommo counted this one plus a full window, whatever the delay, and without synced clocks: Kommo
counted it before it answered. A quick answer (within the margin) costs no second write. Rows are never
claimed ahead of time, so a row is still the sender's own when its answer comes, unless the answer took
longer than the whole window; then the next request on the row may share a second with it, and Kommo's
429 pauses every process (`pause`).

Taking a row is a compare-and-swap: read the rows, then `UPDATE … WHERE next_free_us = <value read>`; if
another process got there first, no row is updated and we read again. No transaction stays open while we
wait, and the same SQL runs on SQLite and PostgreSQL. Processes on several machines share it too (their
clocks should be NTP-synced; `margin` covers a few milliseconds between them).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from calsync.errors import SyncError
from crm.models import RateLimitState

MAX_CAS_ROUNDS = 100


class RateLimitBusy(SyncError):
    """The queue for the shared limit is longer than we are willing to wait in one task."""


class SharedRateLimiter:
    def __init__(
        self,
        name: str,
        max_rps: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 60.0,
        margin: float = 0.0,
    ):
        if max_rps <= 0:
            raise ValueError("max_rps must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be at least 0 and below 1")
        self.name = name
        # N requests in any window of N / max_rps seconds: 7 in any second at 7/s; below 1/s, one request
        # per 1/max_rps seconds.
        self.size = max(1, math.floor(max_rps))
        # The API's window (one second at 7/s) and ours: `margin` stretches ours by that fraction, so an
        # answer within `margin` of its slot needs no second write (see `answered`). Rounded up: never
        # over max_rps.
        self.api_window_us = math.ceil(1_000_000 * self.size / max_rps)
        self.window_us = math.ceil((1 + margin) * 1_000_000 * self.size / max_rps)
        self.margin_us = self.window_us - self.api_window_us
        self.names = [name] + [f"{name}/{i}" for i in range(1, self.size)]
        self.clock = clock
        self.sleep = sleep
        self.max_wait_us = int(max_wait * 1_000_000)
        self.last_slot: float | None = None  # the slot the last acquire() got (unix seconds), for tests and logs
        self._held = threading.local()  # per thread: (row, slot, the value written) until `answered()`

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def _rows(self) -> list[tuple[str, int]]:
        """(name, next free) of every row, the one that frees first first."""
        rows = list(RateLimitState.objects.filter(name__in=self.names).values_list("name", "next_free_us"))
        if len(rows) < self.size:
            have = {n for n, _ in rows}
            RateLimitState.objects.bulk_create(
                [RateLimitState(name=n, next_free_us=0) for n in self.names if n not in have], ignore_conflicts=True
            )
            rows = list(RateLimitState.objects.filter(name__in=self.names).values_list("name", "next_free_us"))
        return sorted(rows, key=lambda row: (row[1], row[0]))

    def _swap(self, name: str, expected: int, new: int) -> bool:
        return bool(RateLimitState.objects.filter(name=name, next_free_us=expected).update(next_free_us=new))

    def _take(self, name: str, free_at: int, now: int) -> bool:
        """Swap the row free at `free_at` to `now` plus the window; remember it until `answered()`."""
        if not self._swap(name, free_at, now + self.window_us):
            return False
        self.last_slot = now / 1e6
        self._held.slot = (name, now, now + self.window_us)
        return True

    def acquire(self) -> float:
        """Take a row that is free now, sleeping until the first one frees if none is; the seconds waited."""
        waited_us = 0
        lost = 0
        while True:
            now = self._now_us()
            name, free_at = self._rows()[0]
            if free_at > now:
                # Sleep and look again rather than claim the row ahead: its sender may still settle it
                # later (`answered`), and a claim made now could not see that.
                wait_us = free_at - now
                if waited_us + wait_us > self.max_wait_us:
                    raise RateLimitBusy(
                        f"Kommo rate limit: the next free slot is {wait_us / 1e6:.0f}s away; trying later",
                        retry_after=wait_us / 1e6,
                    )
                self.sleep(wait_us / 1e6)
                waited_us += wait_us
                continue
            if self._take(name, free_at, now):
                return waited_us / 1e6
            lost += 1
            if lost >= MAX_CAS_ROUNDS:
                raise RateLimitBusy("Kommo rate limit: too much contention for a slot", retry_after=5)

    def try_acquire_idle(self) -> bool:
        """Take a slot only if one is free right now and the limit is not paused: never wait.

        For low-priority work (verification), which also steps aside while webhook work is waiting
        (`crm.verify`); at worst a request arriving later waits for its slot to age out.
        """
        now = self._now_us()
        rows = self._rows()
        if any(free_at > now + self.window_us for _, free_at in rows):  # paused after a 429
            return False
        name, free_at = rows[0]
        return free_at <= now and self._take(name, free_at, now)

    def answered(self) -> None:
        """The request sent in this thread's last slot has its answer (or failed): settle its row.

        Kommo counted the request before answering, so the answer's time plus the API's window is when
        the row may serve again. Within the margin that is no later than the row says already.
        """
        held = getattr(self._held, "slot", None)
        if held is None:
            return
        self._held.slot = None
        name, _slot, written = held
        settled = self._now_us() + self.api_window_us
        if settled > written:
            # The swap fails only when another request took the row after it freed: this one went
            # unanswered for the whole window, and nothing safe is left to move (see the module's note).
            self._swap(name, written, settled)

    def pause(self, seconds: float) -> None:
        """Hold every process back for `seconds` (Kommo answered 429: keep all of us quiet)."""
        for name in self.names:
            for _ in range(MAX_CAS_ROUNDS):
                current = dict(self._rows())[name]
                until = self._now_us() + int(seconds * 1_000_000)
                if current >= until or self._swap(name, current, until):
                    break
