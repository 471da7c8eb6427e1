"""What calsync wrote to Kommo for each meeting, how the deal was chosen, and the shared rate-limit state."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models

from crm.matching import candidate_key  # the rule lives with the matching that compares it


def marker_token(invitee_uri: str) -> str:
    """A short, stable token for a booking: it goes into every note and task text calsync writes."""
    return hashlib.sha1(invitee_uri.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]


class KommoLink(models.Model):
    """One per meeting chain: a reschedule's new booking takes over the link (and its task) of the old one.

    Every Kommo id is saved the moment Kommo returns it. `pending_writes` holds the writes that were
    sent but whose answer never arrived (or whose process died); before sending them again, reconcile
    looks for their marker in the deal's notes or tasks and adopts what it finds.
    """

    class MatchMethod(models.TextChoices):
        SINGLE_OPEN_DEAL = "single_open_deal", "The contact's only open deal"
        MOST_RECENT = "most_recent", "Most recently updated open deal"
        DEAL_ID_ANSWER = "deal_id_answer", "Deal ID answered on the booking form"
        DEAL_ID_UTM = "deal_id_utm", "Deal ID in the booking link (UTM)"
        REMEMBERED = "remembered", "Remembered manual assignment"
        MANUAL = "manual", "Assigned by staff"
        INBOUND_LEAD = "inbound_lead", "New incoming lead"

    class ReviewState(models.TextChoices):
        NONE = "", "Not needed"
        OPEN = "open", "Waiting for staff"
        RESOLVED = "resolved", "Resolved"

    class Decision(models.TextChoices):
        NONE = "", "None"
        ASSIGN = "assign", "Assign a deal"
        INBOUND_LEAD = "inbound_lead", "Create an incoming lead"
        SKIP = "skip", "Skip (write nothing)"

    booking = models.OneToOneField("bookings.Booking", on_delete=models.CASCADE, related_name="kommo_link")
    # The token of the booking that started the chain; the task's and the first note's marker use it.
    marker = models.CharField(max_length=20)
    contact_id = models.BigIntegerField(null=True, blank=True)
    lead_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    lead_responsible_user_id = models.BigIntegerField(null=True, blank=True)
    # Policy `most_recent`: the other open deals also get every note (the task goes to `lead_id` only).
    extra_note_lead_ids = models.JSONField(default=list, blank=True)
    inbound_uid = models.CharField(max_length=100, blank=True, help_text="Kommo's incoming-lead uid, if we made one")
    task_id = models.BigIntegerField(null=True, blank=True)
    # What the task currently shows: {"invitee_uri", "complete_till", "duration", "text_hash", "completed"}.
    task_state = models.JSONField(default=dict, blank=True)
    # "<kind>:<booking token>@<lead id>" → Kommo note id, e.g. "booked:3f9a1c2b4d@18734521".
    note_ids = models.JSONField(default=dict, blank=True)
    # Writes sent whose outcome is unknown: key → ISO time sent.
    pending_writes = models.JSONField(default=dict, blank=True)
    join_url_noted = models.URLField(max_length=1000, blank=True)

    # Matching, for the review queue: [{id, name, pipeline_id, status_id, responsible_user_id, updated_at}].
    candidates = models.JSONField(default=list, blank=True)
    match_method = models.CharField(max_length=20, choices=MatchMethod.choices, blank=True)
    match_reason = models.TextField(blank=True)
    review_state = models.CharField(max_length=10, choices=ReviewState.choices, blank=True, db_index=True)
    decision = models.CharField(max_length=20, choices=Decision.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Kommo link of booking #{self.booking_id} → deal {self.lead_id or '—'}"

    @property
    def has_writes(self) -> bool:
        return bool(self.task_id or self.note_ids or self.pending_writes)

    @property
    def note_lead_ids(self) -> list[int]:
        return [self.lead_id, *self.extra_note_lead_ids] if self.lead_id else []


class RememberedDeal(models.Model):
    """Staff picked `lead_id` by hand for `email` when the open deals were `candidate_key`.

    Later bookings of the same email with the same open deals go to that deal without asking again.
    Switch `active` off (or delete the row) to undo it.
    """

    email = models.CharField(max_length=320, db_index=True)
    # Sorted open-deal ids joined by commas ("" when the contact had no open deal).
    candidate_key = models.CharField(max_length=1000, blank=True)
    lead_id = models.BigIntegerField()
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "candidate_key"], name="remembered_deal_unique")]

    def __str__(self) -> str:
        return f"{self.email} → deal {self.lead_id}" + ("" if self.active else " (off)")

    @staticmethod
    def key_for(lead_ids) -> str:
        return candidate_key(lead_ids)


class RateLimitState(models.Model):
    """The next free request slot of a rate limit shared by every process (see crm.ratelimit)."""

    name = models.CharField(max_length=100, primary_key=True)
    next_free_us = models.BigIntegerField(default=0, help_text="Unix time in microseconds")

    def __str__(self) -> str:
        return self.name


class ReviewItemManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(review_state=KommoLink.ReviewState.OPEN)


class ReviewItem(KommoLink):
    """A meeting waiting for staff to choose its deal (the admin's review queue)."""

    objects = ReviewItemManager()

    class Meta:
        proxy = True
        verbose_name = "review item"
        verbose_name_plural = "Review queue"
        permissions = [("resolve_reviewitem", "Can resolve review items (choose the deal for a meeting)")]


class KommoConnection(models.Model):
    """calsync's OAuth 2.0 connection to one Kommo account (a single row), made with "Connect Kommo".

    The tokens are secrets: `editable=False` keeps them off every admin form, and neither `__str__`
    nor `__repr__` shows them. `crm.oauth` refreshes the access token under a row lock.
    """

    class State(models.TextChoices):
        CONNECTED = "connected", "Connected"
        RECONNECT = "reconnect", "Needs reconnecting (Kommo refused the refresh token)"

    SINGLETON = "kommo"

    slot = models.CharField(max_length=20, primary_key=True, default=SINGLETON, editable=False)
    base_url = models.URLField(help_text="The account's address, from Kommo's callback (`referer`).")
    client_id = models.CharField(max_length=100, help_text="The integration the tokens belong to.")
    access_token = models.TextField(editable=False)
    refresh_token = models.TextField(editable=False)
    expires_at = models.DateTimeField(help_text="When the access token expires (Kommo: 24 hours).")
    # Kommo revokes a refresh token unused for 3 months; each refresh rotates it and restarts the clock.
    refresh_expires_at = models.DateTimeField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.CONNECTED)
    last_error = models.TextField(blank=True, help_text="Why the last refresh failed. No secrets.")
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    connected_at = models.DateTimeField()
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "Kommo connection"
        verbose_name_plural = "Kommo connection (OAuth)"
        permissions = [("connect_kommo", "Can connect calsync to Kommo (OAuth)")]

    def __str__(self) -> str:
        return f"Kommo connection to {self.host} ({self.get_state_display()})"

    def __repr__(self) -> str:
        return f"<KommoConnection {self.host} {self.state} expires_at={self.expires_at}>"

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[-1].rstrip("/")
