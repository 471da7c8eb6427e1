import pytest


def test_healthz_answers_without_db_host_check_or_redirect(client, settings):
    settings.ALLOWED_HOSTS = ["calsync.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_other_paths_still_check_the_host(client, settings):
    settings.ALLOWED_HOSTS = ["calsync.example.com"]
    assert client.get("/admin/", HTTP_HOST="10.0.0.7").status_code == 400
