"""/readyz and /metrics: reachable by IP without host checks, no data, optional bearer token."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from bookings import processing
from bookings.intake import store_delivery
from bookings.models import Booking, WebhookEvent
from calsync.metrics import observe_api_call
from tests.bookings.fake_reconcilers import FIRST
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def strict_hosts(settings, fake_reconcilers):
    settings.ALLOWED_HOSTS = ["calsync.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.CALSYNC_READY_MAX_QUEUE_LAG = 900
    settings.CALSYNC_METRICS_TOKEN = ""


def stored(name="calendly/invitee_created.json") -> WebhookEvent:
    return WebhookEvent.objects.get(pk=store_delivery(load_fixture(name)).event.pk)


def test_readyz_ok_with_an_empty_queue(client):
    response = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": True,
        "oldest_unprocessed_event_age_seconds": 0,
        "queue_lag_ok": True,
    }


def test_readyz_503_when_the_queue_lags(client):
    event = stored()
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=20))
    response = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["queue_lag_ok"] is False
    assert 1190 <= body["oldest_unprocessed_event_age_seconds"] <= 1210
    assert "lucia" not in response.content.decode().lower()  # ages and booleans only


def test_readyz_503_when_the_database_is_unreachable(client):
    with mock.patch("ops.health.connection.cursor", side_effect=OperationalError("could not connect to server")):
        response = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": False}


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", HTTP_HOST="10.0.0.7", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_are_read_from_the_database(fake_reconcilers, client, settings):
    settings.CALSYNC_RECONCILERS = [FIRST]
    done = stored()
    processing.process_event(done.pk)
    fake_reconcilers.fail["first"] = RuntimeError("boom")
    failed = stored("calendly/invitee_canceled.json")
    processing.process_event(failed.pk)
    WebhookEvent.objects.filter(pk=failed.pk).update(next_attempt_at=None)  # out of retries
    fake_reconcilers.fail.clear()
    stored("calendly/reschedule_2_invitee_created_new.json")  # waiting in the queue
    Booking.objects.update(crm_status=Booking.CrmStatus.NEEDS_REVIEW)
    observe_api_call("kommo", 200)
    observe_api_call("kommo", 200)
    observe_api_call("zoom", 429)

    m = scrape(client)

    created, canceled = "invitee.created", "invitee.canceled"
    assert m[("calsync_webhook_events_received_total", (("kind", created), ("source", "webhook")))] == 2
    assert m[("calsync_webhook_events", (("kind", canceled), ("status", "failed")))] == 1
    assert m[("calsync_event_processing_attempts_total", (("kind", created), ("outcome", "done")))] == 1
    assert m[("calsync_event_processing_attempts_total", (("kind", canceled), ("outcome", "failed")))] == 1
    assert m[("calsync_event_processing_seconds_count", ())] == 2
    assert m[("calsync_event_processing_seconds_bucket", (("le", "+Inf"),))] == 2
    assert m[("calsync_event_processing_seconds_bucket", (("le", "300.0"),))] == 2
    assert m[("calsync_external_api_calls_total", (("service", "kommo"), ("status", "200")))] == 2
    assert m[("calsync_external_api_calls_total", (("service", "zoom"), ("status", "429")))] == 1
    assert m[("calsync_queue_depth", ())] == 1
    assert m[("calsync_failed_events", ())] == 1
    assert m[("calsync_bookings_awaiting_review", ())] == 1
    assert m[("calsync_oldest_unprocessed_event_age_seconds", ())] >= 0


CLOCK = {}


def three_second_reconciler(booking):
    CLOCK["clock"].shift(timedelta(seconds=3))
    return "took 3 s"


def test_histogram_buckets_follow_the_durations(client, settings, test_clock):
    CLOCK["clock"] = test_clock
    settings.CALSYNC_RECONCILERS = [f"{__name__}.three_second_reconciler"]
    event = stored()
    processing.process_event(event.pk)
    m = scrape(client)
    assert m[("calsync_event_processing_seconds_bucket", (("le", "2.5"),))] == 0
    assert m[("calsync_event_processing_seconds_bucket", (("le", "5.0"),))] == 1
    assert m[("calsync_event_processing_seconds_sum", ())] == pytest.approx(3.0, abs=0.5)


def test_counters_do_not_go_down_when_old_events_are_deleted(client):
    event = stored()
    processing.process_event(event.pk)
    before = scrape(client)
    WebhookEvent.objects.all().delete()
    after = scrape(client)
    for name, labels in [
        ("calsync_webhook_events_received_total", (("kind", "invitee.created"), ("source", "webhook"))),
        ("calsync_webhook_deliveries_total", (("kind", "invitee.created"),)),
        ("calsync_event_processing_attempts_total", (("kind", "invitee.created"), ("outcome", "done"))),
        ("calsync_event_processing_seconds_count", ()),
    ]:
        assert before[(name, labels)] == after[(name, labels)] == 1
    assert ("calsync_webhook_events", (("kind", "invitee.created"), ("status", "done"))) not in after


def test_a_redelivery_counts_as_a_delivery_not_an_event(client):
    stored()
    stored()
    m = scrape(client)
    assert m[("calsync_webhook_events_received_total", (("kind", "invitee.created"), ("source", "webhook")))] == 1
    assert m[("calsync_webhook_deliveries_total", (("kind", "invitee.created"),))] == 2


def test_a_scrape_runs_a_fixed_number_of_queries_whatever_the_table_size(client, django_assert_max_num_queries):
    """No query per row and none that computes per-row durations: see bench/metrics_scrape.py for times."""
    for name in ("calendly/invitee_created.json", "calendly/invitee_canceled.json"):
        processing.process_event(stored(name).pk)
    with django_assert_max_num_queries(10):
        scrape(client)


def test_metrics_token_is_required_when_set(client, settings):
    settings.CALSYNC_METRICS_TOKEN = "scrape-secret-1"
    assert client.get("/metrics", HTTP_HOST="10.0.0.7").status_code == 401
    assert client.get("/metrics", HTTP_HOST="10.0.0.7", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer scrape-secret-1")[("calsync_queue_depth", ())] == 0


def test_metrics_can_be_switched_off(client, settings):
    settings.CALSYNC_METRICS_ENABLED = False
    assert client.get("/metrics", HTTP_HOST="10.0.0.7").status_code == 400  # falls through to the host check


def test_subscription_state_is_exported_after_a_check(client, rsps):
    from bookings import subscriptions
    from bookings.calendly_api import CalendlyClient
    from tests.ops.api import HOOK_URL, mock_me, mock_subscriptions, subscription

    mock_me(rsps)
    mock_subscriptions(rsps, [subscription("disabled")])
    subscriptions.check(CalendlyClient.from_settings(), HOOK_URL)
    assert scrape(client)[("calsync_calendly_subscription_active", ())] == 0


def deploy_check_ids() -> list[str]:
    from django.core import checks

    return [m.id for m in checks.run_checks(include_deployment_checks=True) if m.id.startswith("calsync.")]


def test_check_deploy_warns_when_metrics_are_open_in_production(settings):
    settings.DEBUG = False
    settings.CALSYNC_METRICS_ENABLED = True
    settings.CALSYNC_METRICS_TOKEN = ""
    assert "calsync.W004" in deploy_check_ids()
    settings.CALSYNC_METRICS_TOKEN = "scrape-secret-1"
    assert "calsync.W004" not in deploy_check_ids()
    settings.CALSYNC_METRICS_TOKEN = ""
    settings.CALSYNC_METRICS_ENABLED = False
    assert "calsync.W004" not in deploy_check_ids()


def test_check_deploy_warning_goes_through_manage_py(settings):
    from io import StringIO

    from django.core.management import call_command

    settings.DEBUG = False
    settings.CALSYNC_METRICS_TOKEN = ""
    err = StringIO()
    call_command("check", "--deploy", stdout=StringIO(), stderr=err)
    assert "calsync.W004" in err.getvalue()


def test_a_stored_event_is_counted_with_one_update_once_its_rows_exist():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calsync.metrics import count_event_stored
    from calsync.models import MetricCount

    count_event_stored("invitee.created", "webhook")  # the first of its kind creates the two rows
    with CaptureQueriesContext(connection) as queries:
        count_event_stored("invitee.created", "webhook")
    assert len(queries) == 1 and queries[0]["sql"].startswith("UPDATE")  # on the acknowledgement's path
    assert sorted(MetricCount.objects.values_list("name", "value")) == [("deliveries", 2), ("events_received", 2)]
    count_event_stored("invitee.canceled", "webhook")
    assert MetricCount.objects.get(name="deliveries", labels='{"kind":"invitee.canceled"}').value == 1
