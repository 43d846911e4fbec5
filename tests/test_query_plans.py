"""Every query the worker, /metrics, the console and the CLI run is served by an index, never by reading a
large table whole (issue 24): on PostgreSQL each statement they send is EXPLAINed with sequential scans
priced out of reach (``enable_seqscan = off``), so a query no index can serve still shows a Seq Scan."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator

import pytest
from sqlalchemy import event, update

from gateway.jobs.rounds import run_once
from gateway.models import Payment, PostOrderRequest, utcnow
from gateway.payments import history, operations

from . import factories
from .console_helpers import make_account, signed_in, standing_rejected_charge, unknown_refund
from .flow_helpers import store_answers
from .protocol_helpers import complete_order_answer

# The tables that grow with every payment; small ones (accounts, profiles) may be read whole.
LARGE = {"payments", "charges", "ledger_entries", "notifications", "notification_attempts", "seen_requests",
         "payment_events", "post_order_requests"}
SEARCHES = ("", "store=example", "orderid=123", "invoice=INV-123", "transactionid=sbx_1", "last4=4242",
            "amount=12.34", "date_from=2026-01-01&date_to=2026-12-31", "before=1", "store=example&amount=1.00&before=1")


@pytest.fixture
def postgres(services):  # type: ignore[no-untyped-def]
    if services.db.engine.dialect.name != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL (TEST_DATABASE_URL)")
    return services


@contextmanager
def statements_sent(services: Any) -> Iterator[list[tuple[str, Any]]]:
    """The reads and writes sent inside the block, with their parameters, to EXPLAIN afterwards."""
    sent: list[tuple[str, Any]] = []

    def remember(_connection, _cursor, statement, parameters, _context, executemany):  # type: ignore[no-untyped-def]
        if not executemany and statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE"):
            sent.append((statement, parameters))

    event.listen(services.db.engine, "before_cursor_execute", remember)
    try:
        yield sent
    finally:
        event.remove(services.db.engine, "before_cursor_execute", remember)


def sequential_scans(services: Any, statement: str, parameters: Any) -> list[str]:
    """The large tables the statement's plan reads whole, when every index is preferred."""
    connection = services.db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        plan = cursor.fetchone()[0]
        connection.rollback()
    finally:
        connection.close()
    return [node["Relation Name"] for node in _nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in LARGE]


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def assert_indexed(services: Any, sent: list[tuple[str, Any]]) -> None:
    assert sent, "nothing was sent"
    scans = {statement: tables for statement, parameters in sent if (tables := sequential_scans(services, statement, parameters))}
    assert not scans, "\n\n".join(f"{tables} read whole by:\n{statement}" for statement, tables in scans.items())


@pytest.fixture
def history_of_every_kind(postgres, client, store):  # type: ignore[no-untyped-def]
    """One item for each thing the worker and the attention queue look for, among ordinary payments."""
    services = postgres
    standing_rejected_charge(client, services, store)
    unknown_refund(client, services, store)
    with factories.bound(services):
        factories.NotificationFactory(dead=True)  # approved, the store never told
        factories.NotificationFactory()  # due for delivery
        factories.PaymentFactory(attention="flagged by a test", attention_at=utcnow())
        factories.PaymentFactory(state="authorizing", attempt=1, updated_at=utcnow() - timedelta(hours=1))
        factories.PaymentFactory(expires_at=utcnow() - timedelta(hours=1))
        for orderid in range(10):
            factories.paid_charge(orderid=orderid, state="completed", credentials_sealed=None)
    with services.db.transaction() as session:
        session.add(PostOrderRequest(orderid=123, randomkey="refund321123xyz", state="processing",
                                     claimed_at=utcnow() - timedelta(hours=1)))
        session.execute(update(Payment).where(Payment.attention != "").values(attention_at=utcnow()))
    store_answers(store, *[complete_order_answer(1)] * 5)
    return services


def test_the_worker_round_reads_no_large_table_whole(history_of_every_kind):
    services = history_of_every_kind
    with statements_sent(services) as sent:
        run_once(services)
    assert_indexed(services, sent)


def test_the_metrics_scrape_and_the_attention_count_read_no_large_table_whole(history_of_every_kind, client):
    services = history_of_every_kind
    with statements_sent(services) as sent:
        assert client.get("/metrics").status_code == 200
        assert operations.attention_count(services) > 0
    assert_indexed(services, sent)


def test_the_attention_page_reads_no_large_table_whole(history_of_every_kind, app):
    services = history_of_every_kind
    make_account(services, "victor", "viewer")
    console = signed_in(app, "victor")[0]
    with statements_sent(services) as sent:
        assert "refund321123xyz" in console.get("/console/attention").get_data(as_text=True)
    assert_indexed(services, sent)


@pytest.mark.parametrize("search", SEARCHES)
def test_each_payment_search_reads_no_large_table_whole(history_of_every_kind, app, search):
    services = history_of_every_kind
    make_account(services, "victor", "viewer")
    console = signed_in(app, "victor")[0]
    with statements_sent(services) as sent:
        assert console.get("/console/payments?" + search).status_code == 200
        history.record(services, 1)
    assert_indexed(services, sent)
