"""Operator commands: dead notifications and voids/refunds whose outcome is unknown."""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator

import requests
import responses
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import event, select

from gateway.cli import main
from gateway.models import Charge, LedgerEntry, PostOrderRequest, utcnow
from gateway.payments import worklist
from gateway.payments.stores import store_key
from gateway.processors.base import ProcessorUnavailable

from .. import factories
from ..console_helpers import dead_notification
from ..flow_helpers import approve_all, open_session, pay, store_answers
from ..protocol_helpers import NOTIFY_URL, complete_order_answer, post_json, signed_refund


def test_dead_notification_is_listed_and_requeued(client, services, store, cli):
    store_answers(store, requests.ConnectionError("down"))  # the store is down (replaced below, once it is back)
    dead_notification(client, services, store)  # a paid order whose notification died (written by the factories)
    listed = cli("notifications", "list", "--state", "dead")
    assert "order 123" in listed and "could not connect to the store" in listed
    notification_id = listed.split("\t")[0]
    assert "pending again" in cli("notifications", "requeue", notification_id)
    store.replace(responses.POST, NOTIFY_URL, json=complete_order_answer(1))
    assert "delivered 1 of 1" in cli("notifications", "work", "--once")
    result = CliRunner().invoke(main, ["notifications", "requeue", notification_id],
                                obj=ScriptInfo(create_app=lambda: client.application))
    assert result.exit_code != 0 and "is not dead" in result.output


def test_refund_with_unknown_outcome_holds_its_amount_until_resolved(client, services, store, cli):
    approve_all(store)
    token, csrf = open_session(client)
    pay(client, token, csrf)
    services.processor.settle()
    with services.db.transaction() as session:
        transactionid = session.scalars(select(Charge)).one().processor_transaction_id
    real_refund = services.processor.refund
    services.processor.refund = lambda *a: (_ for _ in ()).throw(ProcessorUnavailable("timeout"))  # type: ignore[method-assign]
    first = post_json(client, "/post-order", signed_refund(type="refund", transactionid=transactionid, amounttotal=12000))
    assert first["approved"] == 0 and first["errorcode"] == "106"
    services.processor.refund = real_refund  # type: ignore[method-assign]
    blocked = post_json(client, "/post-order", signed_refund(type="refund", transactionid=transactionid,
                                                             amounttotal=1000, randomkey="second"))
    assert blocked["approved"] == 0 and "exceeds the $3.12 left" in blocked["errormessage"]

    listed = cli("ledger", "unresolved")
    assert "refund\t12000\tunknown" in listed
    entry_id = listed.split("\t")[0]
    assert "now declined" in cli("ledger", "resolve", entry_id, "--did-not-happen", "--note", "checked the processor")
    assert cli("ledger", "unresolved") == ""
    after = post_json(client, "/post-order", signed_refund(type="refund", transactionid=transactionid,
                                                           amounttotal=1000, randomkey="third"))
    assert after["approved"] == 1
    with services.db.transaction() as session:
        outcomes = [e.outcome for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))]
    assert outcomes == ["approved", "declined", "approved"]  # the blocked request never reached the ledger


@contextmanager
def statements_run(services) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """The SQL statements run inside the block, as sent to the database."""
    statements: list[str] = []

    def remember(_connection, _cursor, statement, *_rest):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(services.db.engine, "before_cursor_execute", remember)


def interrupted_refunds(services, orderids: range) -> list[int]:  # type: ignore[no-untyped-def]
    """Refund requests whose process died after reserving money on a charge, one per order; their payments' ids."""
    payment_ids = []
    with factories.bound(services):
        for orderid in orderids:
            charge = factories.paid_charge(orderid=orderid, state="completed")
            factories.LedgerEntryFactory(charge=charge, kind="refund", amount=100, outcome="pending",
                                         request_key=f"refund-{orderid}", created_at=utcnow() - timedelta(hours=1))
            payment_ids.append(charge.payment_id)
    with services.db.transaction() as session:
        session.add_all(PostOrderRequest(orderid=orderid, randomkey=f"refund-{orderid}", state="processing",
                                         claimed_at=utcnow() - timedelta(hours=1))
                        for orderid in orderids)
    return payment_ids


def one_of_each_kind(services) -> None:  # type: ignore[no-untyped-def]
    with factories.bound(services):
        factories.PaymentFactory(orderid=1, attention="flagged by a test", attention_at=utcnow())
        factories.LedgerEntryFactory(charge=factories.paid_charge(orderid=2), kind="void", outcome="unknown")
        factories.NotificationFactory(dead=True, charge=factories.paid_charge(orderid=3))


def test_attention_queue_reads_each_kind_in_one_query_however_many_items(services):
    interrupted_refunds(services, range(500, 501))
    with statements_run(services) as one:
        worklist.needs_attention(services)
    payment_ids = interrupted_refunds(services, range(501, 504))
    with statements_run(services) as four:
        queue = worklist.needs_attention(services)
    assert len(four) == len(one)  # the old queue ran two more statements per interrupted refund
    refunds = [item for item in queue if item.kind == worklist.AttentionKind.INTERRUPTED_REFUND]
    assert {item.payment_id for item in refunds} >= set(payment_ids)  # each still names its payment
    assert {item.store_key for item in refunds} == {store_key(NOTIFY_URL)}


def test_metrics_count_each_kind_in_the_database_without_reading_the_items(services):
    one_of_each_kind(services)
    interrupted_refunds(services, range(500, 502))
    with statements_run(services) as statements:
        counts = worklist.count_by_kind(services)
    listed = Counter(item.kind.value for item in worklist.needs_attention(services))
    assert counts == {"payment": 1, "unknown_outcome": 3, "interrupted_refund": 2, "dead_notification": 1} == listed
    assert worklist.attention_count(services) == 7
    reads = [statement for statement in statements if statement.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 4 and all(read.lower().startswith("select count(*)") for read in reads), reads
