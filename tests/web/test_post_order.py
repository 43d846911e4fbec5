"""Exchange 4: the Gateway Post-Order URL voids and refunds exactly once."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from gateway.models import Charge, LedgerEntry, PostOrderRequest, SandboxCharge

from ..flow_helpers import approve_all, open_session, pay
from ..protocol_helpers import PRIVATE_KEY, md5, post_json, signed_refund


@pytest.fixture
def paid(client, services, store) -> str:  # type: ignore[no-untyped-def]
    """A completed sale of the text's example order; returns its transaction id."""
    approve_all(store)
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 303
    with services.db.transaction() as session:
        return session.scalars(select(Charge)).one().processor_transaction_id


def settle_all(services) -> None:  # type: ignore[no-untyped-def]
    assert services.processor.settle() >= 1


def ledger(services) -> list[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return [(e.kind, e.amount, e.outcome) for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))]


def assert_signed(answer, orderid=123, invoice="AB-12234") -> None:  # type: ignore[no-untyped-def]
    assert answer["signature"] == md5(answer["randomkey"], PRIVATE_KEY, orderid, invoice, answer["transactionid"])


def test_example_void_request_voids_an_unsettled_charge(client, services, paid):
    answer = post_json(client, "/post-order", signed_refund(transactionid=paid))
    assert answer["approved"] == 1, answer
    assert answer["errormessage"] == "" and answer["transactionid"].startswith("sbx_v_")
    assert_signed(answer)
    assert ledger(services) == [("sale", 12312, "approved"), ("void", 12312, "approved")]
    with services.db.transaction() as session:
        assert session.scalars(select(SandboxCharge)).one().voided is True


def test_full_request_after_settlement_refunds(client, services, paid):
    settle_all(services)
    answer = post_json(client, "/post-order", signed_refund(transactionid=paid))
    assert answer["approved"] == 1 and answer["transactionid"].startswith("sbx_r_")
    assert_signed(answer)
    assert ledger(services)[-1] == ("refund", 12312, "approved")


@pytest.mark.parametrize("kind", ["refund", "REFUND", "Void"])
def test_type_is_case_insensitive(client, services, paid, kind):
    answer = post_json(client, "/post-order", signed_refund(type=kind, transactionid=paid))
    assert answer["approved"] == 1


def test_partial_refunds_add_up_and_cannot_exceed_the_charge(client, services, paid):
    settle_all(services)
    for index, amount in enumerate((5000, 7000)):
        answer = post_json(client, "/post-order", signed_refund(
            type="refund", transactionid=paid, amounttotal=amount, is_full_refund=False, randomkey=f"part-{index}"))
        assert answer["approved"] == 1, answer
    over = post_json(client, "/post-order", signed_refund(
        type="refund", transactionid=paid, amounttotal=313, is_full_refund=False, randomkey="part-over"))
    assert over["approved"] == 0 and over["errorcode"] == "103"
    assert "exceeds the $3.12 left" in over["errormessage"]
    assert_signed(over)
    last = post_json(client, "/post-order", signed_refund(
        type="refund", transactionid=paid, amounttotal=312, is_full_refund=False, randomkey="part-last"))
    assert last["approved"] == 1
    again = post_json(client, "/post-order", signed_refund(
        type="refund", transactionid=paid, amounttotal=1, is_full_refund=False, randomkey="part-after"))
    assert again["approved"] == 0 and "fully refunded" in again["errormessage"]
    with services.db.transaction() as session:
        assert session.scalars(select(Charge)).one().refunded == 12312
        assert session.scalars(select(SandboxCharge)).one().refunded == 12312


def test_voided_charge_cannot_be_refunded(client, services, paid):
    post_json(client, "/post-order", signed_refund(transactionid=paid))
    answer = post_json(client, "/post-order", signed_refund(transactionid=paid, type="refund", randomkey="second"))
    assert answer["approved"] == 0 and "already been voided" in answer["errormessage"]


def test_replay_returns_the_first_answer_and_moves_no_money(client, services, paid):
    body = signed_refund(transactionid=paid)
    first = post_json(client, "/post-order", body)
    second = post_json(client, "/post-order", body)
    assert first == second
    assert len(ledger(services)) == 2


def test_randomkey_reused_for_another_request_is_refused(client, services, paid):
    settle_all(services)
    post_json(client, "/post-order", signed_refund(transactionid=paid, type="refund", amounttotal=100))
    answer = post_json(client, "/post-order", signed_refund(transactionid=paid, type="refund", amounttotal=200))
    assert answer["approved"] == 0 and "already used" in answer["errormessage"]
    assert len(ledger(services)) == 2


@pytest.mark.parametrize(
    "overrides",
    [{"transactionid": "sbx_unknown"}, {"orderid": 124}, {"invoice": "AB-0"},
     {"password": "someone-elses"}, {"username": "other-merchant"}],
)
def test_unknown_or_foreign_transaction_is_refused_without_detail(client, services, paid, overrides):
    body = {"transactionid": paid, **overrides}
    answer = post_json(client, "/post-order", signed_refund(**body))
    assert answer["approved"] == 0 and answer["errorcode"] == "104"
    assert "with these credentials" in answer["errormessage"]
    assert len(ledger(services)) == 1


@pytest.mark.parametrize("field, value", [("orderid", 999), ("invoice", "X"), ("transactionid", "sbx_other"), ("randomkey", "zz")])
def test_tampered_signature_is_refused(client, services, paid, field, value):
    body = signed_refund(transactionid=paid)
    body[field] = value
    answer = post_json(client, "/post-order", body)
    assert answer["approved"] == 0 and answer["errorcode"] == "100" and "signature" in answer["errormessage"]
    assert len(ledger(services)) == 1


@pytest.mark.parametrize(
    "overrides, words",
    [({"type": "sale"}, "type must be"), ({"amounttotal": 0}, "amounttotal"), ({"amounttotal": "1.5"}, "whole number"),
     ({"currency": "EUR"}, "currency EUR")],
)
def test_bad_requests_get_specific_errors(client, paid, overrides, words):
    answer = post_json(client, "/post-order", signed_refund(transactionid=paid, **overrides))
    assert answer["approved"] == 0 and words in answer["errormessage"]


@pytest.mark.parametrize("body", [b"", b"{", b"[]"])
def test_garbage_bodies_get_signed_errors(client, body):
    answer = post_json(client, "/post-order", body)
    assert answer["approved"] == 0 and answer["errorcode"] == "100"
    assert answer["signature"] == md5(answer["randomkey"], PRIVATE_KEY, "", "", "")


def test_concurrent_refunds_never_exceed_the_charge(app, services, paid):
    settle_all(services)
    start = threading.Barrier(6, timeout=10)
    answers: list[dict] = []

    def refund(index: int) -> None:
        client = app.test_client()
        body = signed_refund(type="refund", transactionid=paid, amounttotal=5000, is_full_refund=False, randomkey=f"c{index}")
        start.wait()
        answers.append(post_json(client, "/post-order", body))

    threads = [threading.Thread(target=refund, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(answer["approved"] for answer in answers) == 2  # 2 x 5000 fit in 12312, a third does not
    with services.db.transaction() as session:
        assert session.scalars(select(SandboxCharge)).one().refunded == 10000
        assert session.scalar(select(func.count()).select_from(PostOrderRequest)) == 6


def test_concurrent_replays_move_money_once(app, services, paid):
    body = signed_refund(transactionid=paid)
    start = threading.Barrier(4, timeout=10)
    answers: list[dict] = []

    def send() -> None:
        client = app.test_client()
        start.wait()
        answers.append(post_json(client, "/post-order", body))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([e for e in ledger(services) if e[0] == "void"]) == 1
    assert sum(answer["approved"] for answer in answers) >= 1


def test_sandbox_settles_after_its_configured_delay(settings, store):
    from dataclasses import replace

    from gateway import create_app

    app = create_app(replace(settings, sandbox_settle_seconds=0))
    client = app.test_client()
    approve_all(store)
    token, csrf = open_session(client)
    pay(client, token, csrf)
    services = app.extensions["gateway"]
    with services.db.transaction() as session:
        transactionid = session.scalars(select(Charge)).one().processor_transaction_id
    answer = post_json(client, "/post-order", signed_refund(transactionid=transactionid))
    assert answer["approved"] == 1 and answer["transactionid"].startswith("sbx_r_")  # settled: refunded, not voided
    services.db.dispose()
