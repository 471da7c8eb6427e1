"""What other apps add to the booking admin, so that `bookings.admin` imports none of them.

An app registers its columns in its `AppConfig.ready()` (crm: the Kommo deal; conferencing: the Zoom
meeting), the same way CALSYNC_RECONCILERS keeps the sync itself apart. A column shows in the
booking list and in the first block of the booking's page, ordered by `order`.
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
