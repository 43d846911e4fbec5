"""Request ids in and out, structured logs, and the health probes."""
from __future__ import annotations

import io
import json
import logging

import requests
import responses
from sqlalchemy import update

from gateway import create_app
from gateway.config import load_settings
from gateway.jobs.rounds import run_once
from gateway.migrate import upgrade
from gateway.models import Notification, utcnow
from gateway.observability import requestid
from gateway.processors.authorizenet import PRODUCTION_URL, AuthorizeNetProcessor

from .flow_helpers import approve_all, open_session, pay, store_answers
from .processors.test_authorizenet import approved, sale_request
from .protocol_helpers import CARDS, PRIVATE_KEY, complete_order_answer, post_json, signed_checkout


def test_healthz_says_the_process_is_alive(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_is_ok_on_a_migrated_database(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.get_json()["status"] == "ok"


def test_readyz_refuses_traffic_while_migrations_are_pending(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0002")
    app = create_app(load_settings({}, database_url=url))
    try:
        answer = app.test_client().get("/readyz")
        assert answer.status_code == 503 and answer.get_json()["status"] == "migrations pending"
        assert answer.get_json()["database"] == ["0002"]
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        app.extensions["gateway"].db.dispose()


def test_readyz_refuses_traffic_when_the_database_is_unreachable():
    app = create_app(load_settings({}, database_url="postgresql://nobody@127.0.0.1:9/none"))
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503 and answer.get_json() == {"status": "database unavailable"}


def test_every_response_carries_a_request_id(client):
    made = client.get("/healthz").headers[requestid.HEADER]
    assert len(made) == 32
    assert client.get("/healthz", headers={requestid.HEADER: "lb-1234-abcd"}).headers[requestid.HEADER] == "lb-1234-abcd"
    hostile = client.get("/healthz", headers={requestid.HEADER: "x\" injected"}).headers[requestid.HEADER]
    assert hostile != "x\" injected" and len(hostile) == 32


def test_request_id_travels_on_the_store_notification(client, store):
    approve_all(store)
    token, csrf = open_session(client)
    response = pay(client, token, csrf)
    [call] = store.calls
    assert call.request.headers[requestid.HEADER] == response.headers[requestid.HEADER]


def test_request_id_travels_on_processor_calls():
    with responses.RequestsMock() as api:
        api.add(responses.POST, PRODUCTION_URL, body=approved())
        requestid.begin("checkout-req-0001")
        AuthorizeNetProcessor().sale(sale_request())
        assert api.calls[0].request.headers[requestid.HEADER] == "checkout-req-0001"


def forged_checkout() -> dict:  # type: ignore[type-arg]
    return {**signed_checkout(), "signature": "0" * 32}


def _captured_log(app) -> io.StringIO:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    for handler in logging.getLogger().handlers:
        if getattr(handler, "gateway_handler", False):
            handler.setStream(stream)  # type: ignore[attr-defined]
    return stream


def test_production_logs_are_json_lines_with_the_request_id(settings):
    app = create_app(load_settings({}, database_url=settings.database_url, private_key=PRIVATE_KEY, log_json=True))
    try:
        stream = _captured_log(app)
        response = app.test_client().post("/checkout", data=json.dumps(forged_checkout()),
                                          content_type="application/json",
                                          headers={requestid.HEADER: "trace-me-please"})
        assert response.status_code == 200
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        refused = [line for line in lines if "checkout refused" in line["message"]]
        assert refused and refused[0]["request_id"] == "trace-me-please" and refused[0]["level"] == "INFO"
    finally:
        app.extensions["gateway"].db.dispose()


def test_development_logs_are_text_with_the_request_id(app, client):
    stream = _captured_log(app)
    post_json(client, "/checkout", forged_checkout())
    assert " [" in stream.getvalue() and "checkout refused" in stream.getvalue()
    assert not stream.getvalue().lstrip().startswith("{")



def test_no_card_number_or_credential_reaches_the_log(app, client, store):
    stream = _captured_log(app)
    approve_all(store)
    token, csrf = open_session(client)
    pay(client, token, csrf, number=CARDS["decline"])
    pay(client, token, csrf)
    logged = stream.getvalue()
    assert "charged" in logged
    for secret in (CARDS["decline"], CARDS["visa"], "password1"):
        assert secret not in logged


def test_each_worker_round_sends_its_own_request_id(client, services, store):
    store_answers(store, requests.ConnectionError("down"), requests.ConnectionError("down"), complete_order_answer(1))
    token, csrf = open_session(client)
    shopper = pay(client, token, csrf)
    for _ in range(2):
        with services.db.transaction() as session:
            session.execute(update(Notification).values(next_attempt_at=utcnow()))
        run_once(services)
    ids = [call.request.headers[requestid.HEADER] for call in store.calls]
    assert len(ids) == 3 and ids[0] == shopper.headers[requestid.HEADER] and len(set(ids)) == 3
