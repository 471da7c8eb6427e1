"""The scheduled event of a delivery that did not embed it, read from the Calendly API.

Calendly's current docs mark `payload.scheduled_event` required, but its published 2023 spec examples
omit it. Such a delivery is stored like any other; processing then reads the event with
`GET /scheduled_events/{uuid}` (the UUID from `payload.event`) through the configured
CALENDLY_API_URL and CALENDLY_API_TOKEN. No token, a rate limit or the API being down is a transient
failure: the event is retried with the usual backoff, with an error text that says what is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bookings.calendly import CalendlyDelivery, parse_scheduled_event
from bookings.calendly_api import CalendlyClient, CalendlyNotConfigured, uuid_of
from calsync.errors import SyncError


def with_scheduled_event(
    delivery: CalendlyDelivery, *, client_factory: Callable[[], CalendlyClient] | None = None
) -> CalendlyDelivery:
    """The delivery itself when it embeds its event, else a copy with the event read from the API."""
    invitee = delivery.invitee
    if invitee is None or delivery.scheduled_event is not None:
        return delivery
    uuid = uuid_of(invitee.event_uri)
    try:
        client = (client_factory or CalendlyClient.from_settings)()
    except CalendlyNotConfigured:
        raise SyncError(
            f"the delivery has no scheduled_event and CALENDLY_API_TOKEN is not set, so its event {uuid} "
            "cannot be read from Calendly; set the token and the event is retried",
            retryable=True,
        ) from None
    resource = client.get_scheduled_event(uuid)
    event = parse_scheduled_event(resource, f"GET /scheduled_events/{uuid}")
    return dataclasses.replace(delivery, scheduled_event=event)
