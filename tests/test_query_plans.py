"""Every query the worker, /metrics, the console and the CLI run costs what it returns, not what history holds
(issue 24). On PostgreSQL, over a history of a few thousand payments (bench/history.py builds it), each
statement they send is run under EXPLAIN ANALYZE with sequential scans priced out of reach
(``enable_seqscan = off``): a query no index serves shows a Seq Scan of a large table, and one that only
walks a whole index (filtering every row) reads far more rows than any answer holds."""
from __future__ import annotations

import importlib.util
import json
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import event, select, update

from gateway.jobs.rounds import run_once
from gateway.models import Payment, PostOrderRequest, RiskOutcome, RiskSignal, utcnow
from gateway.payments import history, risk

from . import factories
from .console_helpers import make_account, signed_in, standing_rejected_charge, unknown_refund
from .flow_helpers import store_answers
from .protocol_helpers import complete_order_answer

# The tables that grow with every payment; small ones (accounts, profiles) may be read whole.
LARGE = {"payments", "charges", "ledger_entries", "notifications", "notification_attempts", "seen_requests",
         "payment_events", "post_order_requests", "risk_signals"}
HISTORY = 3000
MOST_ROWS_READ = 300  # by one scan of a large table, per loop: a tenth of the history
SEARCHES = ("", "store=example", "store=store7.example", "orderid=123", "invoice=INV-123", "transactionid=sbx_1", "last4=4242",
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


def history_builder() -> Any:
    """bench/history.py, where the history is built (bench/ is a directory of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_history", Path(__file__).parent.parent / "bench" / "history.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def history_read(services: Any, statement: str, parameters: Any) -> list[str]:
    """How the statement reads the large tables, where it reads one whole (run, then rolled back)."""
    connection = services.db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        plan = cursor.fetchone()[0]
    finally:
        connection.rollback()
        connection.close()
    return [_read_whole(node) for node in _nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
            if node.get("Relation Name") in LARGE and _read_whole(node)]


def _read_whole(node: dict[str, Any]) -> str:
    """'' unless the scan reads a large table whole: sequentially, or row after row through an index."""
    read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
    if node["Node Type"] == "Seq Scan":
        return f"Seq Scan of {node['Relation Name']}"
    if read > MOST_ROWS_READ:
        return f"{node['Node Type']} of {node['Relation Name']} reading {read} rows per loop"
    return ""


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def assert_indexed(services: Any, sent: list[tuple[str, Any]]) -> None:
    assert sent, "nothing was sent"
    scans = {statement: reads for statement, parameters in sent if (reads := history_read(services, statement, parameters))}
    assert not scans, "\n\n".join(f"{reads} by:\n{statement}" for statement, reads in scans.items())


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
    with services.db.engine.begin() as connection:
        history_builder().build(connection, HISTORY, stores=50, current=5)
    store_answers(store, *[complete_order_answer(1)] * 5)
    return services


def test_the_worker_round_reads_no_large_table_whole(history_of_every_kind):
    services = history_of_every_kind
    with statements_sent(services) as sent:
        run_once(services)
    # Retention's deletes read up to their batch bound by design; their plans are checked, with that
    # bound, in tests/payments/test_retention.py.
    assert_indexed(services, [(statement, parameters) for statement, parameters in sent
                              if not statement.lstrip().upper().startswith("DELETE")])


def test_the_metrics_scrape_and_the_cli_read_no_large_table_whole(history_of_every_kind, client, cli):
    services = history_of_every_kind
    with statements_sent(services) as sent:
        assert client.get("/metrics").status_code == 200
        assert int(cli("attention", "count")) > 0
        assert "refund321123xyz" in cli("attention", "list")
        assert "unknown" in cli("ledger", "unresolved")
        assert "could not connect" in cli("notifications", "list", "--state", "dead")
    assert_indexed(services, sent)


def test_the_attention_stores_and_payment_pages_read_no_large_table_whole(history_of_every_kind, app):
    services = history_of_every_kind
    make_account(services, "victor", "viewer")
    console = signed_in(app, "victor")[0]
    with services.db.transaction() as session:
        flagged = session.scalars(select(Payment.id).where(Payment.attention != "").limit(1)).one()
    with statements_sent(services) as sent:
        assert "refund321123xyz" in console.get("/console/attention").get_data(as_text=True)
        assert console.get(f"/console/payments/{flagged}").status_code == 200
        assert "store7.example.com" in console.get("/console/stores").get_data(as_text=True)
        assert console.get("/console/stores/store7.example.com").status_code == 200
    assert_indexed(services, sent)


def test_no_payment_search_reads_a_large_table_whole(history_of_every_kind, app):
    services = history_of_every_kind
    make_account(services, "victor", "viewer")
    console = signed_in(app, "victor")[0]
    with statements_sent(services) as sent:
        for search in SEARCHES:
            assert console.get("/console/payments?" + search).status_code == 200
        history.record(services, 1)
    assert_indexed(services, sent)


def test_the_risk_read_at_a_busy_store_reads_what_it_counts_not_the_stores_hour(postgres):
    """Issue 21: every card attempt reads its store's newest attempts and its order's own. At a store in a
    sale (here 3,000 attempts in 12 minutes, from other cards and addresses), neither may read them all."""
    services = postgres
    with factories.bound(services):
        payment = factories.PaymentFactory()
    now = utcnow()
    with services.db.engine.begin() as connection:
        connection.execute(RiskSignal.__table__.insert(), [  # type: ignore[attr-defined]
            {"at": now - timedelta(seconds=index / 4), "store_key": payment.store_key, "payment_id": 10_000_000 + index,
             "orderid": 20_000_000 + index, "card_fingerprint": f"{index:064x}", "address": f"10.{index % 200}.0.1",
             "network": f"10.{index % 200}.0.0/24", "outcome": RiskOutcome.APPROVED, "reason": ""}
            for index in reversed(range(HISTORY))])  # oldest first, as they came
        connection.exec_driver_sql("ANALYZE risk_signals")
    limits = risk.thresholds(services, payment.store_key)
    with statements_sent(services) as sent:
        found = risk.signals(services, payment, "f" * 64, "203.0.113.9", limits)
    assert found.store_judged == limits.attack_min_attempts
    assert found.store_attempts_last_minute == limits.attack_attempts_per_minute  # counted as far as they matter
    assert_indexed(services, sent)
