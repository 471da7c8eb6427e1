"""The review-queue decision form: pick a candidate deal, type a deal id (checked live), new lead, or skip."""

from __future__ import annotations

from django import forms

OTHER = "other"
INBOUND_LEAD = "inbound_lead"
SKIP = "skip"
# KommoLink.lead_id is a 64-bit integer column: a larger id must be a form error, not a database error.
MAX_DEAL_ID = 2**63 - 1


class ReviewDecisionForm(forms.Form):
    choice = forms.ChoiceField(widget=forms.RadioSelect, label="Decision", required=False)
    deal_id = forms.IntegerField(required=False, min_value=1, max_value=MAX_DEAL_ID, label="Deal id")
    # The id staff were shown as checked: it only decides whether to show the deal first or save now.
    # It comes from the browser, so it proves nothing: the admin asks Kommo again before saving.
    checked_deal_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    remember = forms.BooleanField(
        required=False,
        initial=True,
        label="Remember: later bookings of this e-mail with the same open deals go to this deal",
    )

    def __init__(self, *args, candidates: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.candidate_ids = {int(c["id"]) for c in candidates if c.get("id") is not None}
        self.fields["choice"].choices = [
            *((f"deal:{c['id']}", f"{c['name']} (deal {c['id']})") for c in candidates),
            (OTHER, "Another deal (type its id)"),
            (INBOUND_LEAD, "Create a new incoming lead"),
            (SKIP, "Skip: write nothing to Kommo"),
        ]

    def clean(self):
        data = super().clean()
        choice = data.get("choice") or ""
        if not choice and data.get("deal_id"):
            choice = data["choice"] = OTHER  # typing an id means "another deal" (the page's script ticks it too)
        if not choice:
            self.add_error("choice", "Choose what calsync should do with this meeting.")
        if choice == OTHER and not data.get("deal_id"):
            self.add_error("deal_id", "Type the id of the deal (the number at the end of its Kommo address).")
        if choice.startswith("deal:"):
            data["deal_id"] = int(choice.split(":", 1)[1])
            if data["deal_id"] not in self.candidate_ids:
                self.add_error("choice", "That deal is not one of the candidates.")
        return data

    @property
    def needs_live_check(self) -> bool:
        """A typed id that staff have not yet been shown (Kommo is asked about every typed id anyway)."""
        data = self.cleaned_data
        return data.get("choice") == OTHER and data.get("deal_id") != data.get("checked_deal_id")
