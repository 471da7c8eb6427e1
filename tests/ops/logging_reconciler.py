"""A reconciler that logs like a careless client would, for the logging tests."""

import logging

logger = logging.getLogger("crm.client")


def noisy(booking):
    logger.info("found contact for %s", booking.invitee_email)
    logger.warning("Kommo call failed: Authorization: Bearer kommo-live-token-123 for %s", booking.invitee_email)
    return "logged"
