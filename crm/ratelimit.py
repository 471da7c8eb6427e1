"""A request-rate limit shared by every process through database rows: a sliding log.

"Not more than N requests in any `window` seconds" is kept with N rows, one per request of the last
window. Each row holds the time (unix microseconds) its slot is free again: the time of the request that
took it plus the window. A request takes the row that frees first: it goes at `max(now, that row)` and
writes back its own time plus the window. So the rows always hold the N latest requests, and a request
never goes before the N-th request before it is a full window old: no window holds more than N. An idle
system sends up to N requests at once (a single booking's lookups and writes don't wait for each other);
a burst runs at N per window.

Taking a row is a compare-and-swap: read the rows, then `UPDATE … WHERE next_free_us = <value read>`; if
another process got there first, no row is updated and we read again. No transaction stays open while we
wait, and the same SQL runs on SQLite and PostgreSQL. Processes on several machines share it too (their
clocks should be NTP-synced).
"""

from __future__ import annotations

import math
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
        # A request stamped at t here reaches the API a few milliseconds later (scheduling, the network);
        # were the window exactly one second, a late first request and an on-time eighth would be counted in
        # one second by the API, and it answers 429. `margin` stretches the window by that fraction: 0.05
        # tolerates 50 ms of jitter at 7/s. Rounded up: never over max_rps.
        self.window_us = math.ceil((1 + margin) * 1_000_000 * self.size / max_rps)
        self.names = [name] + [f"{name}/{i}" for i in range(1, self.size)]
        self.clock = clock
        self.sleep = sleep
        self.max_wait_us = int(max_wait * 1_000_000)
        self.last_slot: float | None = None  # the slot the last acquire() got (unix seconds), for tests and logs

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

    def acquire(self) -> float:
        """Take the row that frees first and sleep until it is free; return the seconds waited."""
        for _ in range(MAX_CAS_ROUNDS):
            now = self._now_us()
            name, free_at = self._rows()[0]
            slot = max(now, free_at)
            wait_us = slot - now
            if wait_us > self.max_wait_us:
                raise RateLimitBusy(
                    f"Kommo rate limit: the next free slot is {wait_us / 1e6:.0f}s away; trying later",
                    retry_after=wait_us / 1e6,
                )
            if self._swap(name, free_at, slot + self.window_us):
                self.last_slot = slot / 1e6
                if wait_us > 0:
                    self.sleep(wait_us / 1e6)
                return wait_us / 1e6
        raise RateLimitBusy("Kommo rate limit: too much contention for a slot", retry_after=5)

    def try_acquire_idle(self) -> bool:
        """Take a slot only if one is free right now and nobody waits for one: never wait, never queue.

        For low-priority work (verification): it uses only slots nobody else asked for, so it never
        pushes a waiting request back; at worst a request arriving later waits for it to age out.
        """
        now = self._now_us()
        rows = self._rows()
        if any(free_at > now + self.window_us for _, free_at in rows):  # someone sleeps until a future slot
            return False
        name, free_at = rows[0]
        if free_at > now or not self._swap(name, free_at, now + self.window_us):
            return False
        self.last_slot = now / 1e6
        return True

    def pause(self, seconds: float) -> None:
        """Hold every process back for `seconds` (Kommo answered 429: keep all of us quiet)."""
        for name in self.names:
            for _ in range(MAX_CAS_ROUNDS):
                current = dict(self._rows())[name]
                until = self._now_us() + int(seconds * 1_000_000)
                if current >= until or self._swap(name, current, until):
                    break
