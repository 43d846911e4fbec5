"""Prometheus metrics: a purchase moves the counters, in one process and across gunicorn workers."""
from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gateway import create_app
from gateway.config import load_settings

from ..console_helpers import dead_notification
from ..flow_helpers import approve_all, open_session, pay
from ..live import ConfiguredGunicorn, StoreReceiver, gateway_env, wait_for
from ..protocol_helpers import CARDS, PRIVATE_KEY
from ..test_live_server import checkout, submit


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scrape: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client) -> dict:  # type: ignore[no-untyped-def, type-arg]
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def test_metrics_scrape_after_a_purchase_shows_the_counters_moved(client, store):
    approve_all(store)
    before = scrape(client)
    token, csrf = open_session(client)
    pay(client, token, csrf, number=CARDS["insufficient"])
    pay(client, token, csrf)
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gateway_checkouts_total", outcome="accepted") == 1
    assert moved("gateway_charges_total", outcome="declined", reason="insufficient_funds") == 1
    assert moved("gateway_charges_total", outcome="approved", reason="approved") == 1
    assert moved("gateway_processor_seconds_count", processor="sandbox", operation="sale", outcome="ok") == 1
    assert moved("gateway_processor_seconds_count", processor="sandbox", operation="sale",
                 outcome="insufficient_funds") == 1
    assert moved("gateway_notification_attempts_total", outcome="delivered") == 1
    assert moved("gateway_store_notification_seconds_count", outcome="delivered") == 1
    assert moved("gateway_http_requests_total", endpoint="checkout.checkout", status="2xx") == 1


def test_needs_attention_gauge_is_read_from_the_database(client, services, store):
    assert value(scrape(client), "gateway_needs_attention", kind="dead_notification") == 0
    dead_notification(client, services, store)
    current = scrape(client)
    assert value(current, "gateway_needs_attention", kind="dead_notification") == 1
    assert value(current, "gateway_needs_attention", kind="unknown_outcome") == 0


def test_metrics_need_the_token_when_one_is_configured(settings):
    app = create_app(load_settings({}, database_url=settings.database_url, metrics_token="s3cret-scraper"))
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-scraper"}).status_code == 200
    finally:
        app.extensions["gateway"].db.dispose()


@pytest.mark.live
def test_counters_add_up_across_gunicorn_workers(clean_database, tmp_path):
    """Each worker counts its own purchases; every scrape, whichever worker answers, shows them all
    (gateway/gunicorn_conf.py, as the Procfile runs it, sets up the shared directory and the exit hook)."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {**gateway_env(clean_database, PRIVATE_KEY), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    purchases = 6
    (metrics_dir / "stale_0.db").write_bytes(b"left by an earlier run")
    with StoreReceiver() as receiver, ConfiguredGunicorn({**env, "WEB_CONCURRENCY": "2"}) as gateway:
        assert not (metrics_dir / "stale_0.db").exists()
        for number in range(purchases):
            token, csrf = checkout(gateway, receiver, orderid=1000 + number, randomkey=f"key{number}")
            assert submit(gateway, token, csrf).status_code == 303
        assert len(receiver.received) == purchases
        wait_for(lambda: requests.get(gateway.url + "/healthz", timeout=10) and len(
            {f.name.split("_")[-1] for f in metrics_dir.iterdir()}) >= 2, what="both workers to have served requests")
        for _ in range(6):
            current = samples(requests.get(gateway.url + "/metrics", timeout=10).text)
            assert value(current, "gateway_checkouts_total", outcome="accepted") == purchases
            assert value(current, "gateway_charges_total", outcome="approved", reason="approved") == purchases
            assert value(current, "gateway_notification_attempts_total", outcome="delivered") == purchases
