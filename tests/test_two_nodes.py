"""Production's shape on loopback: two web nodes (gunicorn masters on their own ports) and two
delivery workers, all on one PostgreSQL database and one Redis, with production's settings.

What only that shape shows: the card-attempt limit counts across nodes, a console sign-in made on
one node works on the other, and killing a node and a worker with SIGKILL in the middle of sales
loses no store notification and charges no order twice.
"""
from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from gateway.config import SANDBOX_IN_PRODUCTION_OPT_IN, load_settings
from gateway.console import accounts
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.models import Charge, Notification, NotificationState, Payment, PaymentState, SandboxCharge, utcnow
from gateway.services import Services

from .console_helpers import PASSWORD, form_csrf
from .live import ROOT, StoreReceiver, free_port, wait_for, wait_until_up
from .protocol_helpers import PRIVATE_KEY, card_form, csrf_from, signed_checkout
from .web.test_security import _self_signed

# One set of processes serves the module's tests, in order (the last one kills a node and a worker),
# on one xdist worker: they share a database and a Redis database.
pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.xdist_group("two-nodes")]

REDIS_URL = "redis://127.0.0.1:6379/4"  # a Redis database of this test's own
PUBLIC_URL = "https://pay.gateway.test"  # the load balancer's name; the test talks to each node directly
SHOPPER = "198.51.100.20"
CARD_TESTER = "203.0.113.7"


def production_database(suffix: str) -> str:
    """``<TEST_DATABASE_URL's database>_<suffix>``, created when missing and emptied, then migrated."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("production needs PostgreSQL: set TEST_DATABASE_URL")
    url = make_url(base)
    name = f"{url.database}_{suffix}"
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError:
        pytest.skip("PostgreSQL is unreachable")
    finally:
        admin.dispose()
    nodes = url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(nodes)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    upgrade(nodes)
    return nodes


def empty_redis(url: str = REDIS_URL) -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).flushdb()
    except redis.RedisError:
        pytest.skip("Redis is unreachable on 127.0.0.1:6379")


def production_env(database_url: str, store_certificate: Path) -> dict[str, str]:
    """What a deployment sets: real secrets, PostgreSQL, Redis, an https public URL, one proxy in
    front; the sandbox by its explicit opt-in, and a loopback store (trusted by its certificate)."""
    return {
        "GATEWAY_ENV": "production",
        "GATEWAY_PRIVATE_KEY": PRIVATE_KEY,  # the stores sign with it (tests/protocol_helpers.py)
        "GATEWAY_SECRET_KEY": Fernet.generate_key().decode() + Fernet.generate_key().decode(),
        "GATEWAY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url,
        "GATEWAY_PUBLIC_URL": PUBLIC_URL,
        "GATEWAY_PROCESSOR": "sandbox",
        "GATEWAY_SANDBOX_IN_PRODUCTION": SANDBOX_IN_PRODUCTION_OPT_IN,
        "GATEWAY_RATELIMIT_STORAGE": REDIS_URL,
        "GATEWAY_METRICS_TOKEN": Fernet.generate_key().decode(),
        "GATEWAY_TRUSTED_PROXIES": "1",
        "GATEWAY_NOTIFY_ALLOW_PRIVATE": "1",
        "REQUESTS_CA_BUNDLE": str(store_certificate),
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "16",
        "GUNICORN_GRACEFUL_TIMEOUT": "1",
        "GUNICORN_ACCESS_LOG": "",
    }


class Process:
    """A gateway process of its own session, so SIGKILL takes it with every child (a whole node)."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def node(env: dict[str, str]) -> tuple[Process, str]:
    """A web node as the Procfile runs it (gateway/gunicorn_conf.py), on a port of its own."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--config", "python:gateway.gunicorn_conf", "gateway:create_app()"]
    return Process(command, {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}), f"http://127.0.0.1:{port}"


def worker(env: dict[str, str]) -> Process:
    """The Procfile's delivery worker, polling often and claiming one notification at a time (so two
    workers share a queue rather than one taking it all)."""
    return Process([sys.executable, "-m", "gateway.cli", "notifications", "work", "--interval", "0.1", "--batch", "1"],
                   env)


def through_proxy(address: str) -> dict[str, str]:
    """The headers the load balancer adds: the client's address, and that it came over https."""
    return {"X-Forwarded-For": address, "X-Forwarded-Proto": "https"}


@dataclass
class Production:
    store: StoreReceiver
    nodes: tuple[Process, Process]
    urls: tuple[str, str]
    workers: tuple[Process, Process]
    services: Services  # the test's own view of the shared database


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    database_url = production_database("nodes")
    empty_redis()
    store, certificate = https_store(tmp_path_factory.mktemp("store"))
    env = production_env(database_url, certificate)
    with ExitStack() as stack:
        stack.enter_context(store)
        (a, url_a), (b, url_b) = node(env), node(env)
        workers = (worker(env), worker(env))
        for process in (a, b, *workers):
            stack.callback(process.stop)
        for process, url in ((a, url_a), (b, url_b)):
            wait_until_up(url + "/healthz", process.process)
        services = Services.build(load_settings(env))
        stack.callback(services.db.dispose)
        yield Production(store, (a, b), (url_a, url_b), workers, services)


def https_store(directory: Path) -> tuple[StoreReceiver, Path]:
    """A loopback store over https (production posts to https only), and the certificate to trust it by."""
    certificate, key = _self_signed(directory, "localhost")
    store = StoreReceiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    store.server.socket = context.wrap_socket(store.server.socket, server_side=True)
    store.url = store.url.replace("http://127.0.0.1", "https://localhost")
    return store, certificate


def checkout(node_url: str, store: StoreReceiver, orderid: int) -> tuple[str, str]:
    """The store sends the shopper to the gateway; the shopper opens the payment page (via the proxy)."""
    body = signed_checkout(orderid=orderid, invoice=f"INV-{orderid}", notificationurl=store.url)
    answer = requests.post(node_url + "/checkout", json=body, headers=through_proxy(SHOPPER), timeout=10).json()
    assert answer["errormessage"] == "", answer
    assert answer["redirecturl"].startswith(PUBLIC_URL)
    page = requests.get(node_url + "/pay", params={"paymenttoken": answer["paymenttoken"]},
                        headers=through_proxy(SHOPPER), timeout=10)
    return answer["paymenttoken"], csrf_from(page.text)


def pay(node_url: str, token: str, csrf: str, **fields: str) -> requests.Response:
    return requests.post(node_url + "/pay/submit", data={**card_form(token, csrf), **fields},
                         headers=through_proxy(SHOPPER), allow_redirects=False, timeout=30)


def test_card_attempt_limit_holds_across_nodes(production):
    """10 card attempts per address in all: the nodes count together in Redis."""
    urls = production.urls
    token, csrf = checkout(urls[0], production.store, orderid=900)
    codes = [requests.post(urls[n % 2] + "/pay/submit", data={**card_form(token, csrf), "card_number": "1"},
                           headers=through_proxy(CARD_TESTER), timeout=10).status_code for n in range(12)]
    assert codes == [422] * 10 + [429] * 2  # alternating between the nodes


class ConsoleBrowser:
    """An operator's browser behind the https proxy: it keeps the console's Secure cookies itself
    (requests sends those only over https)."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        headers = {**through_proxy("192.0.2.5"), **({"Cookie": cookie} if cookie else {})}
        response = requests.request(method, url, headers=headers, allow_redirects=False, timeout=10, **kwargs)
        for name, value in response.cookies.items():
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response


def test_console_sign_in_on_one_node_works_on_the_other(production):
    """Signed in on A, the operator works on B; signed out on B, the same cookie is refused on A."""
    urls = production.urls
    accounts.create(production.services, "test", "olivia", PASSWORD, "operator")
    browser = ConsoleBrowser()
    login = browser.request("GET", urls[0] + "/console/login")
    signed_in = browser.request("POST", urls[0] + "/console/login", data={
        "csrf": form_csrf(login.text), "username": "olivia", "password": PASSWORD, "code": ""})
    assert signed_in.status_code == 303, signed_in.text[:300]
    on_b = browser.request("GET", urls[1] + "/console/audit")
    assert on_b.status_code == 200 and "olivia" in on_b.text
    token = browser.cookies["gateway_console"]
    out = browser.request("POST", urls[1] + "/console/logout", data={"csrf": form_csrf(on_b.text)})
    assert out.status_code == 303
    browser.cookies["gateway_console"] = token  # signed out on B: the same cookie no longer works on A
    assert browser.request("GET", urls[0] + "/console/audit").status_code == 303


def _notifications(services: Services) -> list[Notification]:
    with services.db.transaction() as session:
        return list(session.scalars(select(Notification)))


def _leases_run_out(services: Services) -> None:
    """Time passes for the leases of processes that died holding them (the dead cannot renew)."""
    with services.db.transaction() as session:
        session.execute(update(Notification).where(Notification.state == NotificationState.PENDING)
                        .values(claimed_until=utcnow()))


def _held(services: Services) -> list[Notification]:
    now = utcnow()
    return [n for n in _notifications(services)
            if n.state == NotificationState.PENDING and n.claimed_until is not None and n.claimed_until > now]


def test_sigkill_of_a_node_and_a_worker_mid_sale_loses_no_notification_and_charges_no_order_twice(production):
    """Node A dies after charging while the store confirms its orders, a worker dies while posting
    one of them: every order is charged once and its store told, by whoever is left."""
    store, urls, services = production.store, production.urls, production.services
    node_a, first_worker = production.nodes[0], production.workers[0]
    # Four sales, two on each node; the store takes its time to confirm each order.
    store.delay = 1.5
    sales = {orderid: (urls[orderid % 2], *checkout(urls[orderid % 2], store, orderid)) for orderid in (1, 2, 3, 4)}
    answers: dict[int, Any] = {}

    def shopper(orderid: int) -> None:
        url, token, csrf = sales[orderid]
        try:
            answers[orderid] = pay(url, token, csrf).status_code
        except requests.RequestException as exc:
            answers[orderid] = exc

    shoppers = [threading.Thread(target=shopper, args=(orderid,)) for orderid in sales]
    for thread in shoppers:
        thread.start()

    # Every card is charged and every order's notification written; node A (orders 2 and 4)
    # is waiting on the store when it dies.
    def charged() -> bool:
        with services.db.transaction() as session:
            return session.scalar(select(func.count()).select_from(Charge)) == 4

    wait_for(charged, what="four charges")
    node_a.kill()
    for thread in shoppers:
        thread.join(timeout=30)
    assert answers[1] == answers[3] == 303  # node B's shoppers went back to the store
    assert isinstance(answers[2], requests.ConnectionError) and isinstance(answers[4], requests.ConnectionError)

    # A shopper of the dead node presses Pay again, now on node B: the card is not charged again,
    # the shopper waits on the "confirming with the store" page.
    _url, token, csrf = sales[2]
    assert pay(urls[1], token, csrf).status_code == 202

    # The dead node's leases run out; each worker takes one of its notifications and, while
    # both are posting to the slow store, the first worker dies too.
    _leases_run_out(services)
    wait_for(lambda: len(_held(services)) == 2, what="both workers to claim a notification each")
    first_worker.kill()
    store.delay = 0
    wait_for(lambda: len(_held(services)) <= 1, timeout=10, what="the second worker to deliver its notification")
    _leases_run_out(services)  # the first worker's lease runs out: the second takes its notification over
    wait_for(lambda: all(n.state == NotificationState.DELIVERED for n in _notifications(services)), timeout=10,
             what="every notification delivered")

    with services.db.transaction() as session:
        payments = {p.orderid: p for p in session.scalars(select(Payment).where(Payment.orderid < 900))}
        charges = {c.orderid: c.processor_transaction_id for c in session.scalars(select(Charge))}
        processor_charges = session.scalar(select(func.count()).select_from(SandboxCharge))
    assert {orderid: p.state for orderid, p in payments.items()} == {n: PaymentState.COMPLETED for n in sales}
    assert processor_charges == 4 and len(charges) == 4  # one charge per order, at the processor too
    told = {(n["orderid"], n["transactionid"], n["approved"]) for n in store.received}
    assert told == {(orderid, charges[orderid], 1) for orderid in sales}
