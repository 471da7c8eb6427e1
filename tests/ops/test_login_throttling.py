"""Admin logins are throttled (django-axes): wrong passwords lock the username, the right one then fails too."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def admin_user_pw(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return User.objects.create_superuser("ops", "ops@acme-sales.example", "right-Pass-9")


def attempt(client, password: str, username: str = "ops"):
    return client.post(LOGIN, {"username": username, "password": password})


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_wrong_passwords_lock_the_username_even_for_the_right_one(client, admin_user_pw):
    answers = [attempt(client, "guess").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 200, 429]  # the fifth failure locks
    response = attempt(client, "right-Pass-9")
    assert response.status_code == 429
    assert not logged_in(client)


def test_the_lock_holds_from_another_address_and_ends_after_the_cool_off(client, admin_user_pw, test_clock):
    for _ in range(5):
        attempt(client, "guess")
    other = client.post(LOGIN, {"username": "ops", "password": "right-Pass-9"}, REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 429
    test_clock.shift(timedelta(minutes=16))
    assert attempt(client, "right-Pass-9").status_code == 302 and logged_in(client)


def test_a_few_mistakes_then_the_right_password_work_and_other_users_are_not_locked(client, admin_user_pw):
    User.objects.create_superuser("marta", "marta@acme-sales.example", "marta-Pass-7")
    for _ in range(5):
        attempt(client, "guess")
    assert attempt(client, "marta-Pass-7", username="marta").status_code == 302
    client.logout()
    for _ in range(4):
        attempt(client, "typo", username="marta")
    assert attempt(client, "marta-Pass-7", username="marta").status_code == 302 and logged_in(client)
