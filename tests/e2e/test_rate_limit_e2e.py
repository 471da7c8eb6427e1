"""A burst against Kommo's sliding-window limit, with requests reaching Kommo late: never a 429.

Kommo counts a request when it arrives. The emulator here holds each request back by up to 150 ms before
counting it (a busy machine or a slow network path), more than the limiter's margin covers on its own;
the limiter's rows are settled by each answer, so the next request on a row leaves a full second after
Kommo counted the last one. Two task processes share the limit, as the deployment's workers do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox import calendly_sender as cs
from tests.e2e.world import crm_seed, people, tasks_by_lead, zoom_accounts

pytestmark = pytest.mark.e2e

BOOKINGS = 30


def test_a_burst_with_late_arrivals_draws_no_429(e2e):
    persons = people(BOOKINGS, prefix="late")
    emulators = e2e.emulators(
        kommo_seed=crm_seed(persons), zoom_seed=zoom_accounts(), kommo_settings={"arrival_jitter_ms": 150}
    )
    stack = e2e.stack(workers=2, extra_env={**emulators.env(), "CALSYNC_LOG_LEVEL": "WARNING"})
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    for n, person in enumerate(persons):
        booking = cs.booking(email=person.email, name=person.name, start=start + timedelta(minutes=30 * n))
        status, answer = stack.post(cs.encode(cs.created(booking)))
        assert status == 202, (status, answer)
    stack.wait_until_settled(BOOKINGS, timeout=120)

    kommo = emulators.state("kommo")
    assert sum(len(tasks) for tasks in tasks_by_lead(kommo).values()) == BOOKINGS
    assert kommo["requests"]["rate_limited"] == 0, kommo["requests"]
