import pytest

from bookings import calendly_api

TOKEN = "cal-test-token-7f3a9c"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def calendly_settings(settings, monkeypatch):
    settings.CALENDLY_API_TOKEN = TOKEN
    settings.CALENDLY_API_URL = "https://api.calendly.com"
    settings.CALENDLY_WEBHOOK_URL = "https://calsync.example.com/webhooks/calendly/"
    settings.CALENDLY_WEBHOOK_SCOPE = "organization"
    settings.CALENDLY_RECREATE_DISABLED_SUBSCRIPTION = False
    settings.CALSYNC_PUBLIC_URL = "https://calsync.example.com"
    sleeps = Sleeps()
    monkeypatch.setattr(calendly_api, "DEFAULT_SLEEP", sleeps)  # never really sleep
    return sleeps


@pytest.fixture
def sleeps(calendly_settings):
    return calendly_settings


@pytest.fixture(autouse=True)
def fresh_cache(db):
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
