"""A reconciler that records what it saw, for tests that check a sync ran again with new data."""

SEEN: list[tuple[int, str]] = []


def record(booking):
    SEEN.append((booking.pk, booking.conference_join_url))
    return "recorded"
