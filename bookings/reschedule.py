"""When two bookings may be linked as the halves of a reschedule, and what happens when they may not.

A reschedule pointer (`old_invitee` on a new booking, `new_invitee` on a cancelled one) marks the old
booking as moved, for good, and hands its Kommo task and Zoom meeting to the new one. So a pointer is
followed only when both bookings are the same invitee's (same e-mail, compared case-insensitively), each
old booking gets at most one new one and each new one at most one old one, and the chain has no cycle.
Both bookings are always of the same Calendly organisation: every delivery calsync accepts is signed with
the key of this installation's webhook subscription, and Calendly payloads carry no organisation to compare.

A pointer that breaks the rule is ignored: the booking is processed on its own, and the booking that
carried the pointer gets a `link_problem` a person sees in the admin.
"""

from __future__ import annotations

from django.db.models import Q

from bookings.models import Booking

MAX_CHAIN = 200


def _same_invitee(a: Booking, b: Booking) -> bool:
    return a.invitee_email.strip().casefold() == b.invitee_email.strip().casefold()


def _ancestors_include(target: Booking, start: Booking) -> bool:
    """Whether `target` comes before `start` in a chain, following links and every stored pointer."""
    seen = {start.pk}
    frontier = [start]
    while frontier and len(seen) < MAX_CHAIN:
        booking = frontier.pop()
        earlier = Q(next_invitee_uri=booking.invitee_uri)
        if booking.previous_invitee_uri:
            earlier |= Q(invitee_uri=booking.previous_invitee_uri)
        if booking.rescheduled_from_id:
            earlier |= Q(pk=booking.rescheduled_from_id)
        for found in Booking.objects.filter(earlier).exclude(pk__in=seen):
            if found.pk == target.pk:
                return True
            seen.add(found.pk)
            frontier.append(found)
    return False


def link_refusal(old: Booking, new: Booking) -> str | None:
    """Why `old` may not be linked as moved to `new` (None: it may). Reads only; locks are the caller's."""
    if old.pk == new.pk:
        return "the reschedule pointer names the booking itself"
    if not _same_invitee(old, new):
        return (
            f"booking #{new.pk} ({new.invitee_email}) and booking #{old.pk} ({old.invitee_email}) name each other "
            "as halves of a reschedule, but they are different invitees"
        )
    successor = Booking.objects.filter(rescheduled_from=old).exclude(pk=new.pk).first()
    if successor is not None:
        return (
            f"booking #{new.pk} names booking #{old.pk} as its old half, but that was already moved to #{successor.pk}"
        )
    if old.next_invitee_uri and old.next_invitee_uri != new.invitee_uri:
        return (
            f"booking #{new.pk} names booking #{old.pk} as its old half, but Calendly moved that one to "
            f"{old.next_invitee_uri}"
        )
    if new.rescheduled_from_id not in (None, old.pk):
        return f"booking #{new.pk} already continues booking #{new.rescheduled_from_id}, not #{old.pk}"
    if new.previous_invitee_uri and new.previous_invitee_uri != old.invitee_uri:
        return (
            f"booking #{old.pk} names booking #{new.pk} as its new half, but that one continues "
            f"{new.previous_invitee_uri}"
        )
    if _ancestors_include(new, old):
        return f"linking booking #{old.pk} to #{new.pk} would make a cycle of reschedules"
    return None


def flag(booking: Booking, problem: str) -> None:
    """Note a problem on the booking for a person (once: processing again does not repeat it)."""
    current = Booking.objects.filter(pk=booking.pk).values_list("link_problem", flat=True).first() or ""
    if problem in current.splitlines():
        booking.link_problem = current
        return
    booking.link_problem = f"{current}\n{problem}".strip()
    Booking.objects.filter(pk=booking.pk).update(link_problem=booking.link_problem)
