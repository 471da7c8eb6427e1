"""A request-rate limit shared by every process through one database row.

The row holds the next free slot (unix microseconds). Taking a slot is a compare-and-swap: read the
row, then `UPDATE … WHERE next_free_us = <value read>`; if another process got there first, no row is
updated and we read again. No transaction stays open while we wait, and the same SQL runs on SQLite
and PostgreSQL. Slots are `1 / max_rps` apart, so no window of one second holds more than `max_rps`.
Processes on several machines share it too (their clocks should be NTP-synced).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from django.db import IntegrityError, transaction

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
        # Slots exactly 1/max_rps apart put request n+max_rps exactly one second after request n: a few
        # milliseconds of scheduling or network jitter on the first one and the API sees max_rps + 1
        # in one second, and answers 429 (the benchmark's burst got ~170 of them at 7/s). `margin`
        # stretches each window by that fraction: 0.05 tolerates 50 ms of jitter at 7/s for 5% less speed.
        self.interval_us = math.ceil((1 + margin) * 1_000_000 / max_rps)  # round up: never over max_rps
        self.clock = clock
        self.sleep = sleep
        self.max_wait_us = int(max_wait * 1_000_000)
        self.last_slot: float | None = None  # the slot the last acquire() got (unix seconds), for tests and logs

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def _current(self) -> int:
        value = RateLimitState.objects.filter(name=self.name).values_list("next_free_us", flat=True).first()
        if value is not None:
            return value
        try:
            with transaction.atomic():
                RateLimitState.objects.create(name=self.name, next_free_us=0)
        except IntegrityError:  # another process created it first
            pass
        return RateLimitState.objects.filter(name=self.name).values_list("next_free_us", flat=True).get()

    def _swap(self, expected: int, new: int) -> bool:
        return bool(RateLimitState.objects.filter(name=self.name, next_free_us=expected).update(next_free_us=new))

    def acquire(self) -> float:
        """Take the next slot and sleep until it comes; return the seconds waited."""
        for _ in range(MAX_CAS_ROUNDS):
            now = self._now_us()
            current = self._current()
            slot = max(now, current)
            wait_us = slot - now
            if wait_us > self.max_wait_us:
                raise RateLimitBusy(
                    f"Kommo rate limit: the next free slot is {wait_us / 1e6:.0f}s away; trying later",
                    retry_after=wait_us / 1e6,
                )
            if self._swap(current, slot + self.interval_us):
                self.last_slot = slot / 1e6
                if wait_us > 0:
                    self.sleep(wait_us / 1e6)
                return wait_us / 1e6
        raise RateLimitBusy("Kommo rate limit: too much contention for a slot", retry_after=5)

    def try_acquire_idle(self) -> bool:
        """Take the slot only if it is free right now: never wait, never queue in front of anyone.

        For low-priority work (verification): it uses only slots nobody else asked for, so it never
        pushes a waiting request back; at worst a request arriving later waits one interval behind it.
        """
        now = self._now_us()
        current = self._current()
        if current > now or not self._swap(current, now + self.interval_us):
            return False
        self.last_slot = now / 1e6
        return True

    def pause(self, seconds: float) -> None:
        """Hold every process back for `seconds` (Kommo answered 429: keep all of us quiet)."""
        for _ in range(MAX_CAS_ROUNDS):
            current = self._current()
            until = self._now_us() + int(seconds * 1_000_000)
            if current >= until or self._swap(current, until):
                return
