"""A server worker compiles the shopper pages and statements before its first shopper (gateway/web/warmup.py)."""
from __future__ import annotations

from flask import Flask
from jinja2 import Environment

from gateway import prepared
from gateway.models import PaymentState
from gateway.web.warmup import SHOPPER_TEMPLATES, warm_up, warm_worker

from ..flow_helpers import approve_all, open_session, pay, payment_row


def compiled(env: Environment) -> set[str]:
    return {name for (_loader, name) in (env.cache or {}).keys()}


def test_a_warmed_worker_has_every_shopper_template_compiled(app, client):
    assert not compiled(app.jinja_env) & set(SHOPPER_TEMPLATES)
    warm_up(app)
    assert set(SHOPPER_TEMPLATES) <= compiled(app.jinja_env)
    token, _ = open_session(client)  # and the compiled pages are the ones shoppers get
    assert client.get("/pay", query_string={"paymenttoken": token}).status_code == 200


def test_every_template_a_shopper_page_uses_is_warmed(app, client):
    token, _ = open_session(client)
    client.get("/pay", query_string={"paymenttoken": token}, headers={"Accept-Language": "de"})
    client.get("/pay/status", query_string={"paymenttoken": token})
    client.get("/pay", query_string={"paymenttoken": "unknown0000000000000000"})
    used = {name for name in compiled(app.jinja_env) if not name.startswith("console/")}
    assert used <= set(SHOPPER_TEMPLATES)


def test_a_worker_warms_the_gateway_it_serves(app):
    warm_worker(app)
    assert set(SHOPPER_TEMPLATES) <= compiled(app.jinja_env)


def test_a_worker_serving_another_wsgi_app_is_left_alone(app):
    warm_worker(app.wsgi_app)  # a plain WSGI callable: nothing to compile, and no error
    other = Flask("other")  # another Flask app has none of the gateway's templates
    warm_worker(other)
    assert not compiled(app.jinja_env) & set(SHOPPER_TEMPLATES)
    assert not compiled(other.jinja_env)


def test_a_warmed_worker_compiles_nothing_for_a_purchase(app, client, services, store, monkeypatch):
    """Every statement a checkout, a page view and a purchase run on the database driver is compiled
    by the warm-up, for this database."""
    monkeypatch.setattr(prepared, "_BUILT", {})  # a fresh worker's: what other tests compiled is not counted
    warm_up(app)
    before = set(prepared._BUILT)
    approve_all(store)
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 303
    assert payment_row(services, token).state == PaymentState.COMPLETED
    assert set(prepared._BUILT) == before
