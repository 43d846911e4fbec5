"""Production runtime: request budgets, slow processors and stores, the gunicorn settings, GET /."""
from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import func, select
from werkzeug import serving

from gateway import budget, cli, create_app
from gateway.cards import Card
from gateway.config import ConfigError, load_settings
from gateway.jobs.rounds import run_once
from gateway.models import PaymentState, SandboxCharge
from gateway.notifications.client import StoreClient
from gateway.processors import sandbox
from gateway.processors.base import SaleRequest
from gateway.vault import Credentials

from .flow_helpers import approve_all, notifications_sent, open_session, pay, payment_row
from .live import ROOT, ConfiguredGunicorn, StoreReceiver, gateway_env
from .protocol_helpers import PRIVATE_KEY, card_form, csrf_from, signed_checkout


def test_home_page_says_what_this_is(client):
    page = client.get("/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "payment gateway" in text
    assert 'href="/healthz"' in text and 'href="/openapi.json"' in text
    assert "https://gateway.test/checkout" in text


def test_production_processes_never_import_the_emulator():
    probe = ("import sys, wsgi, gateway.cli, gateway.jobs.rounds;"
             "print(sorted(m for m in sys.modules if m.startswith(('store_emulator', 'gateway.emulator'))))")
    env = {**os.environ, "DATABASE_URL": "sqlite://"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serve_says_the_delivery_worker_is_not_running(monkeypatch, clean_database):
    monkeypatch.setattr(serving, "run_simple", lambda *args, **kwargs: None)
    result = CliRunner().invoke(cli.main, ["serve", "--emulator-port", "0"], env={"DATABASE_URL": clean_database})
    assert result.exit_code == 0, result.output
    assert "Delivery worker:        NOT running" in result.output
    assert "gateway notifications work" in result.output


def test_serve_starts_the_installed_emulator_beside_the_gateway(monkeypatch, clean_database):
    started = []
    monkeypatch.setattr(serving, "run_simple", lambda *args, **kwargs: None)
    monkeypatch.setattr(serving, "make_server", lambda host, port, app, **kwargs: started.append((port, app)) or
                        type("Idle", (), {"serve_forever": lambda self: None})())
    result = CliRunner().invoke(cli.main, ["serve"], env={"DATABASE_URL": clean_database})
    assert result.exit_code == 0, result.output
    assert [port for port, _ in started] == [5001] and started[0][1].import_name == "store_emulator"
    assert "Store emulator:         open http://127.0.0.1:5001/" in result.output


def test_serve_without_the_emulator_installed_serves_the_gateway_alone_and_says_how_to_install_it(
        monkeypatch, clean_database):
    """The emulator is its own distribution (emulator/): a gateway-only install must still serve."""
    monkeypatch.setattr(serving, "run_simple", lambda *args, **kwargs: None)
    monkeypatch.setitem(sys.modules, "store_emulator", None)  # import fails as if it were not installed
    result = CliRunner().invoke(cli.main, ["serve"], env={"DATABASE_URL": clean_database})
    assert result.exit_code == 0, result.output
    assert "Store emulator:         NOT installed" in result.output
    assert "pip install -e ./emulator" in result.output


def test_serve_with_an_emulator_port_asked_for_but_no_emulator_fails_before_serving(monkeypatch, clean_database):
    served = []
    monkeypatch.setattr(serving, "run_simple", lambda *args, **kwargs: served.append(args))
    monkeypatch.setitem(sys.modules, "store_emulator", None)
    result = CliRunner().invoke(cli.main, ["serve", "--emulator-port", "5001"], env={"DATABASE_URL": clean_database})
    assert result.exit_code != 0 and served == []
    assert "pip install -e ./emulator" in result.output


def test_pay_out_of_budget_shows_confirming_page_and_worker_finishes(settings, store):
    """The processor ate the request's budget: no in-request notification; the worker sends it."""
    slow = settings.__class__(**{**settings.__dict__, "request_budget_seconds": 1.2, "processor_timeout_seconds": 1.0,
                                 "sandbox_latency_seconds": 0.5})
    app = create_app(slow)
    try:
        client = app.test_client()
        services = app.extensions["gateway"]
        approve_all(store)
        token, csrf = open_session(client)
        answer = pay(client, token, csrf)
        assert answer.status_code == 202  # the "confirming with the store" page
        assert notifications_sent(store) == []
        assert payment_row(services, token).state == PaymentState.APPROVED.value
        assert run_once(services).delivered == 1
        assert len(notifications_sent(store)) == 1
        assert payment_row(services, token).state == PaymentState.COMPLETED.value
    finally:
        app.extensions["gateway"].db.dispose()


@pytest.mark.live
def test_slow_store_is_cut_off_at_the_request_budget():
    client = StoreClient(timeout=10, require_https=False, allow_private=True)
    with StoreReceiver() as receiver:
        receiver.delay = 3
        budget.start(1.0)
        try:
            started = time.monotonic()
            exchange = client.post(receiver.url, {"orderid": 1})
            elapsed = time.monotonic() - started
        finally:
            budget.clear()
    assert exchange.answer is None and exchange.error == "store did not answer in time"
    assert elapsed < 2.5


def test_worker_outside_any_request_keeps_the_full_notification_timeout():
    assert budget.remaining() is None
    assert budget.cap(10) == 10 and budget.allows_call()


def test_sandbox_latency_and_jitter(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(sandbox.time, "sleep", slept.append)
    latency = sandbox.Latency(1.0, 0.25)
    for _ in range(200):
        latency.wait()
    assert all(0.75 <= delay <= 1.25 for delay in slept)
    assert max(slept) - min(slept) > 0.25
    sandbox.Latency().wait()
    assert len(slept) == 200


def test_runtime_settings_from_the_environment():
    settings = load_settings({"SANDBOX_LATENCY": "1", "SANDBOX_JITTER": "0.2", "GATEWAY_REQUEST_BUDGET": "20",
                              "GATEWAY_PROCESSOR_TIMEOUT": "8", "GATEWAY_DB_POOL_SIZE": "64", "GATEWAY_PAY_SLOTS": "3"},
                             database_url="sqlite://")
    assert (settings.sandbox_latency_seconds, settings.sandbox_jitter_seconds) == (1.0, 0.2)
    assert (settings.request_budget_seconds, settings.processor_timeout_seconds, settings.db_pool_size) == (20, 8, 64)
    assert settings.pay_slots == 3


@pytest.mark.parametrize("environ", [
    {"GATEWAY_REQUEST_BUDGET": "10", "GATEWAY_PROCESSOR_TIMEOUT": "10"},
    {"SANDBOX_LATENCY": "-1"},
    {"GATEWAY_DB_POOL_SIZE": "0"},
    {"GATEWAY_PAY_SLOTS": "0"},
    {"GATEWAY_REQUEST_BUDGET": "soon"},
])
def test_unsafe_runtime_settings_are_refused(environ):
    with pytest.raises(ConfigError):
        load_settings(environ, database_url="sqlite://")


def test_gunicorn_config_uses_threads_and_outlives_the_budget(monkeypatch):
    environ = {name: value for name, value in os.environ.items() if name != "GATEWAY_DB_POOL_SIZE"}
    monkeypatch.setattr(os, "environ", {**environ, "GUNICORN_THREADS": "32", "PORT": "9123"})
    config = runpy.run_path(str(ROOT / "gateway" / "gunicorn_conf.py"))
    assert config["worker_class"] == "gthread" and config["threads"] == 32
    assert config["bind"] == "0.0.0.0:9123"
    assert os.environ["GATEWAY_DB_POOL_SIZE"] == "16"  # connections per worker: PostgreSQL's limit is shared
    budget_seconds = load_settings({}, database_url="sqlite://").request_budget_seconds
    assert config["timeout"] > budget_seconds and config["graceful_timeout"] > budget_seconds
    procfile = (ROOT / "Procfile").read_text()
    assert "web: gunicorn --config python:gateway.gunicorn_conf 'gateway:create_app()'" in procfile


def test_docs_stand_alone():
    """Someone who clones only this repository can follow every reference in the README and docs/."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "../" not in text and "shared/reference" not in text, page.name
        for path in set(re.findall(r"`((?:docs|bench|scripts|gateway|templates|tests)/[\w./-]+)`", text)):
            assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"


@pytest.mark.live
def test_slow_processor_never_gets_a_worker_killed_mid_charge(clean_database):
    """The processor takes longer than gunicorn's watchdog: the charge still completes, once.

    (A thread worker beats every second even while its threads wait, so the watchdog needs > 1 s.)
    """
    env = {**gateway_env(clean_database, PRIVATE_KEY), "SANDBOX_LATENCY": "5", "GUNICORN_TIMEOUT": "2",
           "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4"}
    with StoreReceiver() as receiver, ConfiguredGunicorn(env) as server:
        body = signed_checkout(notificationurl=receiver.url)
        answer = requests.post(server.url + "/checkout", json=body, timeout=10).json()
        page = requests.get(answer["redirecturl"], params={"paymenttoken": answer["paymenttoken"]}, timeout=10)
        paid = requests.post(server.url + "/pay/submit", data=card_form(answer["paymenttoken"], csrf_from(page.text)),
                             allow_redirects=False, timeout=30)
        assert paid.status_code == 303 and "paymentreceive.asp" in paid.headers["Location"]
        assert len(receiver.received) == 1 and receiver.received[0]["approved"] == 1


def test_sandbox_retried_attempt_gets_the_charge_it_already_made(services):
    """The sandbox books one charge per attempt reference, as a processor's duplicate check does."""
    request = SaleRequest(amount=5000, currency="USD", card=Card("4242424242424242", 12, 2039, "123", "Ada", "visa"),
                          credentials=Credentials("merchant", "key"), reference="ps7a1", invoice="INV-7", orderid=7)
    first = services.processor.sale(request)
    again = services.processor.sale(request)
    assert again == first
    with services.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 1
