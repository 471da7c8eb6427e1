"""Fault injection for the emulators: rules matched by method + path, decided by a seedable RNG.

A rule is a dict (the JSON posted to ``/__emulator__/faults``)::

    {"method": "POST", "path": "/api/v4/tasks*",       # fnmatch patterns; "*" (the default) matches all
     "fault": "applied_but_lost", "probability": 0.1}  # random: one kind, or a list to choose from
    {"method": "PATCH", "path": "/v2/meetings/*", "queue": ["error_before", null, "applied_but_lost"]}
                                                        # explicit: one entry per matching request, null = pass
    {"fault": "delay", "delay_ms": 50}                  # latency on every request (probability defaults to 1)

Kinds: ``error_before`` (answer 500, or ``status``, and apply nothing), ``applied_but_lost`` (apply the
request, then close the connection without an answer), ``rate_limit`` (answer the API's own 429),
``delay`` (sleep ``delay_ms`` first, then carry on; also spelt ``delay_ms``). Every matching rule is
consulted: delays add up, the first non-delay fault wins.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ERROR_BEFORE = "error_before"
APPLIED_BUT_LOST = "applied_but_lost"
RATE_LIMIT = "rate_limit"
DELAY = "delay"
KINDS = frozenset({ERROR_BEFORE, APPLIED_BUT_LOST, RATE_LIMIT, DELAY})
_ALIASES = {"delay_ms": DELAY}


class FaultConfigError(ValueError):
    """A fault rule that cannot be understood; the control endpoint answers 400 with this message."""


def _kind(value: Any, where: str) -> str | None:
    if value is None:
        return None
    kind = _ALIASES.get(value, value)
    if kind not in KINDS:
        raise FaultConfigError(f"{where}: unknown fault {value!r} (known: {', '.join(sorted(KINDS))})")
    return kind


@dataclass
class FaultRule:
    method: str = "*"
    path: str = "*"
    kinds: tuple[str, ...] = ()
    probability: float = 1.0
    queue: list[str | None] | None = None
    status: int = 500
    delay_ms: int = 0
    fired: int = 0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], index: int = 0) -> FaultRule:
        where = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            raise FaultConfigError(f"{where}: expected an object")
        unknown = set(raw) - {"method", "path", "fault", "probability", "queue", "status", "delay_ms"}
        if unknown:
            raise FaultConfigError(f"{where}: unknown keys {sorted(unknown)}")
        fault = raw.get("fault")
        kinds = tuple(_kind(k, where) for k in (fault if isinstance(fault, list) else [fault]) if k is not None)
        queue = raw.get("queue")
        if queue is not None:
            if not isinstance(queue, list):
                raise FaultConfigError(f"{where}.queue: expected a list")
            queue = [_kind(k, f"{where}.queue") for k in queue]
        if not kinds and queue is None:
            raise FaultConfigError(f"{where}: give a 'fault' (with an optional 'probability') or a 'queue'")
        probability = float(raw.get("probability", 1.0))
        if not 0.0 <= probability <= 1.0:
            raise FaultConfigError(f"{where}.probability: must be between 0 and 1")
        delay_ms = int(raw.get("delay_ms", 0))
        if (DELAY in kinds or (queue and DELAY in queue)) and delay_ms <= 0:
            raise FaultConfigError(f"{where}: a delay needs a positive 'delay_ms'")
        return cls(
            method=str(raw.get("method", "*")).upper(),
            path=str(raw.get("path", "*")),
            kinds=kinds,
            probability=probability,
            queue=queue,
            status=int(raw.get("status", 500)),
            delay_ms=delay_ms,
        )

    def matches(self, method: str, path: str) -> bool:
        return fnmatch.fnmatchcase(method, self.method) and fnmatch.fnmatchcase(path, self.path)

    def draw(self, rng: random.Random) -> str | None:
        if self.queue is not None:
            return self.queue.pop(0) if self.queue else None
        if rng.random() >= self.probability:
            return None
        return self.kinds[0] if len(self.kinds) == 1 else rng.choice(self.kinds)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "fault": list(self.kinds),
            "probability": self.probability,
            "queue": self.queue,
            "status": self.status,
            "delay_ms": self.delay_ms,
            "fired": self.fired,
        }


@dataclass
class Decision:
    """What to do with one request: sleep first (``delay_ms``), then maybe one fault."""

    delay_ms: int = 0
    kind: str | None = None
    status: int = 500


@dataclass
class FaultPlan:
    """The active rules and the RNG they draw from. Thread-safe; reproducible for a given seed and order."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible chaos, not cryptography

    def configure(self, rules: Sequence[Mapping[str, Any]], *, seed: int | None = None, append: bool = False) -> None:
        parsed = [FaultRule.from_dict(raw, i) for i, raw in enumerate(rules)]
        with self._lock:
            self.rules = [*self.rules, *parsed] if append else parsed
            if seed is not None or not append:
                self.seed = seed if seed is not None else self.seed
                self._rng = random.Random(self.seed)  # noqa: S311

    def clear(self) -> None:
        with self._lock:
            self.rules = []

    def decide(self, method: str, path: str) -> Decision:
        decision = Decision()
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                kind = rule.draw(self._rng)
                if kind is None:
                    continue
                rule.fired += 1
                if kind == DELAY:
                    decision.delay_ms += rule.delay_ms
                elif decision.kind is None:
                    decision.kind, decision.status = kind, rule.status
        return decision

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self.seed, "rules": [rule.describe() for rule in self.rules]}
