"""Decoding a Calendly delivery body safely, and the error for a body calsync cannot use.

`decode_body` turns raw bytes into JSON within bounds (no integer of more than `MAX_INT_DIGITS`
digits, no NaN or Infinity, no nesting deeper than `MAX_JSON_DEPTH`), and `check_storable` refuses
what a database cannot store, so that whatever is accepted can be stored and processed on every retry.
The other bounds here are the field lengths and years that parsing (`bookings/calendly.py`) enforces.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Bounds on what a delivery may carry, so that whatever is accepted can be stored and processed
# (the columns of bookings.models: kind 100, URIs 500, e-mail 320; years any datetime can shift within).
MAX_KIND_LENGTH = 100
MAX_URI_LENGTH = 500
MAX_EMAIL_LENGTH = 320
MIN_YEAR, MAX_YEAR = 1970, 2199
MAX_INT_DIGITS = 20
MAX_JSON_DEPTH = 32


def clip(value: object, length: int = 80) -> str:
    """`value` as text of at most `length` characters, to quote it in an error message."""
    text = str(value)
    return text if len(text) <= length else text[:length] + "…"


class PayloadError(ValueError):
    """The body is not a Calendly delivery calsync can use. `path` is where it went wrong."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def _refuse_constant(name: str) -> Any:
    raise PayloadError("$", f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise PayloadError("$", f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError("$", f"number out of range: {clip(text)}")
    return value


def check_storable(data: Any) -> None:
    """Refuse JSON a database cannot store as it is: too deep, NUL characters, lone surrogates.

    PostgreSQL's text and jsonb refuse U+0000, and no UTF-8 encoder takes a lone surrogate such as
    ``"\\ud800"``; a delivery that carries them would fail on every retry. Iterative: no recursion limit.
    """
    stack: list[tuple[Any, str, int]] = [(data, "$", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise PayloadError(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"{path} (a key)")
                stack.append((item, f"{path}.{clip(key, 40)}", depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise PayloadError(path, "contains a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(path, "contains a lone surrogate (not valid Unicode)") from None


def decode_body(raw_body: bytes) -> Any:
    try:
        data = json.loads(
            raw_body.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except UnicodeDecodeError:
        raise PayloadError("$", "body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PayloadError("$", f"body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise PayloadError("$", f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_storable(data)
    return data
