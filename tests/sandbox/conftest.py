"""Emulators in threads on 127.0.0.1:0, with a clock the tests move by hand (no sleeping)."""

from __future__ import annotations

import pytest
import requests

from sandbox.kommo_emulator import KommoEmulator
from sandbox.zoom_emulator import ZoomEmulator

KOMMO_TOKEN = "test-kommo-token"
NOW = 1_795_000_000.0  # 2026-11-18T…Z, a fixed "now" for every emulator in these tests


class FakeClock:
    def __init__(self, start: float = NOW):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


KOMMO_SEED = {
    "tokens": {KOMMO_TOKEN: 504141, "member-token": 504142},
    "users": [
        {"id": 504141, "name": "Marta Ruiz", "email": "marta.ruiz@acme-sales.example"},
        {"id": 504142, "name": "Tomás Vidal", "email": "tomas@acme-sales.example", "is_admin": False},
    ],
    "leads": [
        {"id": 100, "name": "Open deal", "status_id": 49366085},
        {"id": 101, "name": "Won deal", "status_id": 142},
        {"id": 102, "name": "Lost deal", "status_id": 143},
        {"id": 103, "name": "Other open deal", "status_id": 49366088},
    ],
    "contacts": [
        {"id": 1, "first_name": "Ann", "last_name": "Lee", "emails": ["ann@x.example"], "lead_ids": [100, 101, 102]},
        {"id": 2, "first_name": "Jo", "last_name": "Ann", "emails": ["JoAnn@X.example"], "lead_ids": [103]},
        {"id": 3, "name": "Pat Doe", "emails": ["pat@y.example"], "comment": "Assistant of ann@x.example"},
        {"id": 4, "name": "Unrelated", "emails": ["zed@z.example"], "phones": ["+1 555 0100"]},
    ],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kommo(clock):
    """Kommo with the rate limit off (tests of the limit make their own); the clock stands still."""
    with KommoEmulator.running(seed=KOMMO_SEED, clock=clock, sleep=clock.sleep, rps=0, fault_seed=7) as emulator:
        yield emulator


@pytest.fixture
def kapi(kommo):
    """A session authenticated like calsync's Kommo client."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {KOMMO_TOKEN}"
    session.base = kommo.url  # type: ignore[attr-defined]
    yield session
    session.close()


@pytest.fixture
def zoom(clock):
    seed = {"users": [{"id": "HOST1", "email": "Marta.Ruiz@acme-sales.example", "first_name": "Marta"}]}
    with ZoomEmulator.running(seed=seed, clock=clock, sleep=clock.sleep, light_rps=0, medium_rps=0) as emulator:
        yield emulator


def zoom_token(emulator: ZoomEmulator) -> str:
    response = requests.post(
        f"{emulator.url}/oauth/token",
        auth=("sandbox-client", "sandbox-secret"),
        data={"grant_type": "account_credentials", "account_id": "sandbox-account"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def zapi(zoom):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {zoom_token(zoom)}"
    yield session
    session.close()


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, timeout=5, **kwargs)


@pytest.fixture(autouse=True)
def booking_memory(tmp_path, monkeypatch):
    """send_test_booking remembers the bookings it sent in a per-test file, never in the repository's var/."""
    from sandbox.management.commands import send_test_booking

    path = tmp_path / "test_bookings.json"
    monkeypatch.setattr(send_test_booking, "MEMORY_FILE", path)
    return path
