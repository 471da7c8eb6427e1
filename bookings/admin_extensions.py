"""What other apps add to the booking admin, so that `bookings.admin` imports none of them.

An app registers its columns in its `AppConfig.ready()` (crm: the Kommo deal; conferencing: the Zoom
meeting), the same way CALSYNC_RECONCILERS keeps the sync itself apart. A column shows in the
booking list and in the first block of the booking's page, ordered by `order`. Apps may also add
a field to the booking search (crm: the deal id) and a count to the admin index's "needs a person"
banner (crm: the review queue).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bookings.models import Booking


@dataclass(frozen=True)
class BookingColumn:
    name: str  # the admin field name (unique)
    description: str  # its heading
    render: Callable[[Booking], str]  # safe HTML or plain text
    order: int = 100
    select_related: tuple[str, ...] = ()  # relations the booking list should join for it


_columns: dict[str, BookingColumn] = {}


def register_column(
    name: str,
    description: str,
    render: Callable[[Booking], str],
    *,
    order: int = 100,
    select_related: tuple[str, ...] = (),
) -> None:
    """Add a column to the booking admin (registering the same name again replaces it)."""
    _columns[name] = BookingColumn(name, description, render, order, tuple(select_related))


def booking_columns() -> list[BookingColumn]:
    return sorted(_columns.values(), key=lambda column: (column.order, column.name))


def booking_column(name: str) -> BookingColumn | None:
    return _columns.get(name)


# --- search fields and "needs a person" counts ----------------------------------------------------

_search_fields: dict[str, str] = {}


def register_search_field(lookup: str) -> None:
    """Let the booking list's search box also look in another app's field (e.g. "=kommo_link__lead_id")."""
    _search_fields[lookup] = lookup


def booking_search_fields() -> tuple[str, ...]:
    return tuple(_search_fields)


@dataclass(frozen=True)
class AttentionCount:
    """A line of the admin index's banner: how many things of a kind need a person, and where they are."""

    name: str
    count: Callable[[object], int]  # the request's user → how many (0 when the user may not see them)
    sentence: Callable[[int], str]  # n → "3 meetings wait for review"
    url: Callable[[], str]  # the list, filtered to them
    order: int = 100


_attention: dict[str, AttentionCount] = {}


def register_attention_count(
    name: str,
    count: Callable[[object], int],
    sentence: Callable[[int], str],
    url: Callable[[], str],
    *,
    order: int = 100,
) -> None:
    """Count something for the admin index's "needs a person" banner (the same name again replaces it)."""
    _attention[name] = AttentionCount(name, count, sentence, url, order)


def attention_counts() -> list[AttentionCount]:
    return sorted(_attention.values(), key=lambda item: (item.order, item.name))
