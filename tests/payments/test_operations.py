"""Operator commands: dead notifications and voids/refunds whose outcome is unknown."""
from __future__ import annotations

import requests
import responses
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from gateway.cli import main
from gateway.models import Charge, LedgerEntry
from gateway.processors.base import ProcessorUnavailable

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
