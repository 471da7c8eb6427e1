"""Webhook deliveries (stored first, processed after) and the bookings they describe."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WebhookEvent(models.Model):
    """One accepted Calendly delivery. Stored before we answer; processing and retries are tracked here.

    Only the functions in `bookings.processing` change `status`.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Calendly webhook"
        RECONCILIATION = "reconciliation", "Reconciliation"

    kind = models.CharField(max_length=100, db_index=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.WEBHOOK)
    invitee_uri = models.CharField(max_length=500, blank=True, db_index=True)
    event_uri = models.CharField(max_length=500, blank=True)
    invitee_email = models.CharField(max_length=320, blank=True, db_index=True)
    calendly_created_at = models.DateTimeField(null=True, blank=True)
    # Byte-exact: the body the signature was computed over (it may not even be UTF-8 when it is bad).
    raw_body = models.BinaryField()
    payload = models.JSONField(null=True, blank=True)
    # kind|invitee URI for deliveries we can parse; a hash of the body for ones we cannot.
    dedupe_key = models.CharField(max_length=700, unique=True, null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=1, help_text="How many times Calendly sent it.")

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_traceback = models.TextField(blank=True)
    # When the sweeper should (re)enqueue it: retry time for failed, lost-enqueue guard for received.
    # NULL on a failed event means "needs attention": no automatic retry is left.
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Set by retention: the raw body and personal data are gone, ids and outcome remain.
    redacted_at = models.DateTimeField(null=True, blank=True)
    booking = models.ForeignKey(
        "bookings.Booking", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [("replay_webhookevent", "Can replay webhook events and sync bookings again")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="event_sweep_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} ({self.status})"

    @property
    def needs_attention(self) -> bool:
        return self.status == self.Status.FAILED and self.next_attempt_at is None

    def raw_text(self) -> str:
        return bytes(self.raw_body).decode("utf-8", errors="replace")


class ProcessingAttempt(models.Model):
    """One run of the pipeline over one event: which steps ran, for which booking, and what happened."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="processing_attempts")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=20, default="queue", help_text="queue, retry, sweep or replay")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    # [{"step": "crm", "booking": 3, "ok": true, "detail": "note 123 written"}, …]
    steps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["event", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of event #{self.event_id}: {self.outcome}"


class Booking(models.Model):
    """One invitee's booking (Calendly's invitee URI is the key: a group event has one per invitee)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELED = "canceled", "Cancelled"
        RESCHEDULED = "rescheduled", "Rescheduled (moved to a new time)"

    class CrmStatus(models.TextChoices):
        PENDING = "pending", "Pending"
        MATCHED = "matched", "Matched to a deal"
        NEEDS_REVIEW = "needs_review", "Needs review"
        INBOUND_LEAD = "inbound_lead", "Inbound lead created"
        SKIPPED = "skipped", "Skipped"

    invitee_uri = models.CharField(max_length=500, unique=True)
    event_uri = models.CharField(max_length=500, db_index=True)
    event_type_uri = models.CharField(max_length=500, blank=True)
    event_type_name = models.CharField(max_length=255, blank=True)
    start_at = models.DateTimeField(db_index=True)
    end_at = models.DateTimeField()
    invitee_timezone = models.CharField(max_length=64, blank=True)
    invitee_name = models.CharField(max_length=255)
    invitee_first_name = models.CharField(max_length=255, blank=True)
    invitee_last_name = models.CharField(max_length=255, blank=True)
    invitee_email = models.CharField(max_length=320, db_index=True)
    invitee_phone = models.CharField(max_length=64, blank=True)
    host_email = models.CharField(max_length=320, blank=True)
    host_name = models.CharField(max_length=255, blank=True)
    guest_emails = models.JSONField(default=list, blank=True)
    location_type = models.CharField(max_length=64, blank=True)
    location_text = models.TextField(blank=True)
    location_status = models.CharField(max_length=32, blank=True)
    # The link Calendly made (native Zoom, Meet, Teams…); calsync's own Zoom link lives on ZoomMeeting.
    location_join_url = models.URLField(max_length=1000, blank=True)
    location_conference_id = models.CharField(max_length=100, blank=True)
    # The link the invitee joins with, whoever made it: Calendly's own conference (set from the
    # payload) or the Zoom meeting calsync made (set by conferencing.sync). crm.sync reads it.
    conference_join_url = models.URLField(max_length=1000, blank=True)
    questions = models.JSONField(default=list, blank=True)  # [{"question", "answer", "position"}]
    tracking = models.JSONField(default=dict, blank=True)  # utm_* values that were set
    cancel_url = models.URLField(max_length=1000, blank=True)
    reschedule_url = models.URLField(max_length=1000, blank=True)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED, db_index=True)
    canceled_by = models.CharField(max_length=255, blank=True)
    canceler_type = models.CharField(max_length=20, blank=True)
    cancel_reason = models.TextField(blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # Reschedule chain. The URIs come from the payloads and may name a booking we have not seen yet;
    # the foreign keys are filled in as soon as both halves are here.
    previous_invitee_uri = models.CharField(max_length=500, blank=True, db_index=True)
    next_invitee_uri = models.CharField(max_length=500, blank=True, db_index=True)
    rescheduled_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rescheduled_to"
    )
    # A reschedule pointer calsync did not follow (another invitee's booking, a second successor, a
    # cycle): the booking was processed on its own and a person should look. See bookings.reschedule.
    link_problem = models.TextField(
        "reschedule link problem",
        blank=True,
        help_text="Why calsync ignored a reschedule pointer of this booking. Empty: nothing to check.",
    )

    # No-show (invitee_no_show.created / .deleted): when it was marked and when it was undone, so the
    # end state does not depend on the order the two deliveries arrive in.
    no_show_at = models.DateTimeField(null=True, blank=True)
    no_show_undone_at = models.DateTimeField(null=True, blank=True)

    crm_status = models.CharField(
        "CRM status", max_length=20, choices=CrmStatus.choices, default=CrmStatus.PENDING, db_index=True
    )
    # The Calendly `updated_at` of the newest data applied: older deliveries never overwrite newer data.
    source_updated_at = models.DateTimeField(null=True, blank=True)
    # A lease that keeps two workers from syncing the same booking at once (no long DB transactions).
    sync_lock_token = models.CharField(max_length=64, blank=True)
    sync_lock_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_at"]

    def __str__(self) -> str:
        return f"{self.event_type_name or 'Meeting'} with {self.invitee_name} at {self.start_at:%Y-%m-%d %H:%M} UTC"

    @property
    def is_live(self) -> bool:
        return self.status == self.Status.SCHEDULED

    @property
    def is_no_show(self) -> bool:
        if self.no_show_at is None:
            return False
        return self.no_show_undone_at is None or self.no_show_undone_at < self.no_show_at

    @property
    def duration_minutes(self) -> int:
        return max(1, round((self.end_at - self.start_at).total_seconds() / 60))

    @property
    def calendly_owns_conference(self) -> bool:
        from bookings.calendly import CALENDLY_CONFERENCE_TYPES

        return self.location_type in CALENDLY_CONFERENCE_TYPES

    def answer_to(self, question_text: str) -> str | None:
        """The answer to the first question whose text starts with `question_text` (case-insensitive)."""
        wanted = question_text.strip().lower()
        for qa in self.questions:
            if str(qa.get("question", "")).strip().lower().startswith(wanted):
                return qa.get("answer") or None
        return None

    def chain(self) -> list[Booking]:
        """The reschedule chain this booking belongs to, oldest first (bounded against cycles)."""
        first: Booking = self
        seen = {self.pk}
        while first.rescheduled_from_id and first.rescheduled_from_id not in seen:
            seen.add(first.rescheduled_from_id)
            first = first.rescheduled_from
        chain = [first]
        while len(chain) < 100:
            nxt = Booking.objects.filter(rescheduled_from=chain[-1]).first()
            if nxt is None or nxt.pk in {b.pk for b in chain}:
                break
            chain.append(nxt)
        return chain


class SyncDrift(models.Model):
    """Something in Kommo or Zoom that no longer matches what calsync recorded for a live booking.

    Found by the verification (`bookings.verification`): a task or meeting deleted, completed or moved
    by a person. Each distinct drift is one row (its `key`), so a drift that lasts is not recorded again
    on every run. Shown in the booking's timeline, counted in /metrics and raised in the alert digest.
    """

    class Outcome(models.TextChoices):
        REPAIRED = "repaired", "Repaired by calsync"
        RAISED = "raised", "Left as it is; raised for a person"
        LEFT_ALONE = "left_alone", "A person's decision; left alone"
        FAILED = "failed", "Repair failed; tried again on the next run"

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="drifts")
    service = models.CharField(max_length=20, help_text="kommo or zoom")
    kind = models.CharField(max_length=40, help_text="e.g. task_deleted, meeting_moved")
    key = models.CharField(max_length=300, unique=True)
    detail = models.TextField(blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    source = models.CharField(max_length=20, default="verify_sync", help_text="verify_sync or resync")
    found_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-found_at", "-id"]

    def __str__(self) -> str:
        return f"{self.service} {self.kind} on booking #{self.booking_id}: {self.outcome}"
