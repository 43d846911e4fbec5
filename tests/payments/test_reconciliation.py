"""Issue 11: money is never stuck, lost or moved twice when things fail halfway; one test per case."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import requests
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select, update

from gateway.cli import main
from gateway.jobs.rounds import run_once
from gateway.models import Charge, LedgerEntry, Notification, Payment, PostOrderRequest, SandboxCharge, utcnow
from gateway.notifications.outbox import Outbox
from gateway.payments import ledger, operations, post_order, worklist
from gateway.payments.completion import apply_store_answer
from gateway.processors.base import AdjustmentRefused, ProcessorUnavailable

from ..flow_helpers import open_session, pay, payment_row, store_answers
from ..protocol_helpers import NOTIFY_URL, complete_order_answer, post_json, signed_refund

AN_HOUR_AGO = timedelta(hours=1)


def make_due(services) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def age(services, model, column: str, by: timedelta = AN_HOUR_AGO) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        session.execute(update(model).values({column: utcnow() - by}))


def sandbox_charge(services) -> SandboxCharge:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalars(select(SandboxCharge)).one()


def ledger_rows(services) -> list[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return [(e.kind, e.amount, e.outcome) for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))]


def attention_kinds(services) -> list[str]:  # type: ignore[no-untyped-def]
    return [item.kind for item in worklist.needs_attention(services)]


def paid_but_unconfirmed(client, services, store) -> str:  # type: ignore[no-untyped-def]
    """A charged order whose CompleteOrderRequest did not get through yet."""
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 202
    return token


def processor_transaction_id(services) -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalars(select(Charge)).one().processor_transaction_id


def test_case_01_one_bad_item_does_not_stop_the_round(client, services, store):
    token = paid_but_unconfirmed(client, services, store)
    broken, _ = open_session(client, orderid=124, randomkey="other-order")
    with services.db.transaction() as session:  # a crash mid-charge, and credentials sealed under a lost key
        session.execute(update(Payment).where(Payment.token == broken).values(
            state="authorizing", attempt=1, credentials_sealed="not-a-fernet-token", updated_at=utcnow() - AN_HOUR_AGO))
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(1))
    make_due(services)
    result = run_once(services)
    assert result.delivered == 1 and payment_row(services, token).state == "completed"
    stuck = payment_row(services, broken)
    assert stuck.state == "authorizing" and "cannot be decrypted" in stuck.attention
    assert stuck.failures == 1 and stuck.retry_at > utcnow()  # its own backoff
    assert attention_kinds(services) == ["payment"]


def test_case_01_an_unexpected_error_delivering_one_notification_spares_the_others(client, services, store, monkeypatch):
    first = paid_but_unconfirmed(client, services, store)
    second, csrf = open_session(client, orderid=124, randomkey="other-order")
    pay(client, second, csrf)
    real = Outbox.deliver
    calls = []

    def explode_once(outbox, notification, on_answer):  # type: ignore[no-untyped-def]
        calls.append(notification.id)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return real(outbox, notification, on_answer)

    monkeypatch.setattr(Outbox, "deliver", explode_once)
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(1))
    make_due(services)
    assert run_once(services).delivered == 1
    states = sorted(payment_row(services, token).state for token in (first, second))
    assert states == ["approved", "completed"]
    with services.db.transaction() as session:
        failed = session.get(Notification, calls[0])
        assert failed.state == "pending" and "bug" in failed.last_error and failed.next_attempt_at > utcnow()


def test_case_02_rejecting_a_partly_refunded_charge_returns_what_is_left(client, services, store):
    token = paid_but_unconfirmed(client, services, store)
    services.processor.settle()
    partial = post_json(client, "/post-order", signed_refund(type="refund", transactionid=processor_transaction_id(services),
                                                             amounttotal=2312))
    assert partial["approved"] == 1
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(0, "REJ", "out of stock"))
    make_due(services)
    run_once(services)
    assert sandbox_charge(services).refunded == 12312
    assert ledger_rows(services)[1:] == [("refund", 2312, "approved"), ("refund", 10000, "approved")]
    payment = payment_row(services, token)
    assert payment.state == "rejected" and payment.credentials_sealed is None and payment.attention == ""


def test_case_02_a_refused_reversal_needs_attention_and_is_not_retried(client, services, store, cli):
    token = paid_but_unconfirmed(client, services, store)
    asked = []

    def refuse(*args):  # type: ignore[no-untyped-def]
        asked.append(args)
        raise AdjustmentRefused("the charge is under dispute")

    services.processor.void = refuse  # type: ignore[method-assign]
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(0))
    make_due(services)
    run_once(services)
    run_once(services)
    run_once(services)
    assert len(asked) == 1  # asked once, not every round
    payment = payment_row(services, token)
    assert "returning $123.12 was refused: the charge is under dispute" in payment.attention
    assert payment.credentials_sealed is not None
    assert "the charge is under dispute" in cli("attention", "list") and cli("attention", "count").strip() == "1"
    cli("attention", "returned-by-hand", str(payment.id), "--note", "refunded in the processor's console")
    assert cli("attention", "count").strip() == "0"
    assert payment_row(services, token).credentials_sealed is None


def test_case_06_a_session_without_credentials_is_never_left_authorizing(client, services, store):
    token, csrf = open_session(client)
    with services.db.transaction() as session:
        session.execute(update(Payment).values(credentials_sealed=None))
    page = pay(client, token, csrf)
    assert payment_row(services, token).state == "open"
    assert "can no longer take payments" in page.get_data(as_text=True)


def test_case_06_recovery_flags_an_attempt_whose_credentials_are_gone(client, services, store):
    token, _ = open_session(client)
    with services.db.transaction() as session:
        session.execute(update(Payment).values(state="authorizing", attempt=1, credentials_sealed=None,
                                                      updated_at=utcnow() - AN_HOUR_AGO))
    run_once(services)
    payment = payment_row(services, token)
    assert payment.state == "authorizing" and "credentials are gone" in payment.attention
    assert operations.resolve_sale(services, payment.id, charged=False, actor="ops", note="nothing at the processor") == "open"
    assert payment_row(services, token).attention == ""


def kill_notification(services) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        session.execute(update(Notification).values(state="dead", last_error="could not connect to the store"))


def test_case_07_a_dead_confirmation_is_flagged_then_reversed_after_the_deadline(client, services, store):
    token = paid_but_unconfirmed(client, services, store)
    kill_notification(services)
    run_once(services)
    payment = payment_row(services, token)
    assert payment.state == "approved" and "the store was never told" in payment.attention
    assert "reversed after 72 hours" in payment.attention
    page = client.get("/pay/status", query_string={"paymenttoken": token})
    assert page.status_code == 200 and "do not pay again" in page.get_data(as_text=True)  # no endless polling
    run_once(services)
    assert not sandbox_charge(services).voided  # not before the deadline
    age(services, Payment, "attention_at", timedelta(hours=73))
    run_once(services)
    payment = payment_row(services, token)
    assert (payment.state, payment.error_code) == ("rejected", "store_unreachable")
    assert sandbox_charge(services).voided and payment.credentials_sealed is None and payment.attention == ""


def test_case_07_the_keep_policy_keeps_the_charge_and_forgets_the_credentials(app, client, services, store):
    app.extensions["gateway"].settings = replace(services.settings, unconfirmed_charge_action="keep")
    token = paid_but_unconfirmed(client, services, store)
    kill_notification(services)
    run_once(services)
    age(services, Payment, "attention_at", timedelta(hours=73))
    run_once(services)
    payment = payment_row(services, token)
    assert payment.state == "approved" and payment.credentials_sealed is None
    assert "charge kept" in payment.attention and not sandbox_charge(services).voided
    with services.db.transaction() as session:  # the store is fixed, the notification requeued ... and rejected
        notification_id = session.scalars(select(Notification.id)).one()
    operations.requeue_notification(services, notification_id, actor="ops", note="store fixed")
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(0))
    run_once(services)
    payment = payment_row(services, token)
    assert payment.state == "rejected" and "return the money at the processor" in payment.attention


def test_case_08_resolve_refuses_an_entry_still_in_flight(client, services, store, cli):
    paid_but_unconfirmed(client, services, store)
    with services.db.transaction() as session:
        transaction = session.scalars(select(Charge)).one()
        entry_id = ledger.reserve(session, transaction.id, ledger.VOID, transaction.amount).id
    result = CliRunner().invoke(main, ["ledger", "resolve", str(entry_id), "--did-not-happen", "--note", "x"],
                                obj=ScriptInfo(create_app=lambda: client.application))
    assert result.exit_code != 0 and "still in flight" in result.output
    with services.db.transaction() as session:  # the call comes back: the processor voided it
        ledger.settle(session, entry_id, ledger.APPROVED, "void-1")
    assert ledger_rows(services)[-1] == ("void", 12312, "approved")


def test_case_08_a_late_answer_contradicting_the_operator_needs_attention(client, services, store, cli):
    paid_but_unconfirmed(client, services, store)
    with services.db.transaction() as session:
        transaction = session.scalars(select(Charge)).one()
        entry_id = ledger.reserve(session, transaction.id, ledger.REFUND, 500).id
    age(services, LedgerEntry, "created_at")
    assert "now declined" in cli("ledger", "resolve", str(entry_id), "--did-not-happen", "--note", "not in the console")
    with services.db.transaction() as session:
        ledger.settle(session, entry_id, ledger.APPROVED, "refund-9")
    with services.db.transaction() as session:
        entry = session.get(LedgerEntry, entry_id)
        assert entry.outcome == "declined" and "answered approved (refund-9)" in entry.attention
    assert "unknown_outcome" in attention_kinds(services)
    cli("ledger", "acknowledge", str(entry_id), "--note", "refund confirmed, books corrected by journal 12")
    assert "unknown_outcome" not in attention_kinds(services)


def test_case_09_a_late_writer_cannot_overwrite_delivered(client, services, store):
    token = paid_but_unconfirmed(client, services, store)
    with services.db.transaction() as session:
        session.execute(update(Notification).values(attempts=services.settings.notify_max_attempts - 1))
    make_due(services)
    slow = services.outbox.claim(notification_id := notification_row(services).id)
    with services.db.transaction() as session:  # its lease runs out while it waits for the store
        session.execute(update(Notification).values(claimed_until=utcnow() - timedelta(seconds=1)))
    fast = services.outbox.claim(notification_id)
    assert slow is not None and fast is not None
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(1))
    assert services.outbox.deliver(fast, apply_store_answer) is not None
    store.replace("POST", NOTIFY_URL, body=requests.ConnectionError("late"))
    assert services.outbox.deliver(slow, apply_store_answer) is None
    row = notification_row(services)
    assert (row.state, row.processed) == ("delivered", True)
    assert payment_row(services, token).state == "completed"


def notification_row(services) -> Notification:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalars(select(Notification)).one()


def settled_sale(client, services, store) -> str:  # type: ignore[no-untyped-def]
    store_answers(store, complete_order_answer(1))
    token, csrf = open_session(client)
    pay(client, token, csrf)
    services.processor.settle()
    return processor_transaction_id(services)


def test_case_10_a_refund_request_that_crashed_after_moving_money_is_answered_approved(client, services, store, monkeypatch):
    body = signed_refund(type="refund", transactionid=settled_sale(client, services, store), amounttotal=1000)
    monkeypatch.setattr(post_order, "_approved", lambda *a: (_ for _ in ()).throw(SystemExit))
    with pytest.raises(SystemExit):  # the process dies after the refund, before its answer is stored
        post_json(client, "/post-order", body)
    monkeypatch.undo()
    assert post_json(client, "/post-order", body)["errormessage"].endswith("try again in a moment")
    age(services, PostOrderRequest, "claimed_at")
    again = post_json(client, "/post-order", body)
    assert again["approved"] == 1 and again["transactionid"].startswith("sbx_r_")
    assert sandbox_charge(services).refunded == 1000  # money moved once
    assert post_json(client, "/post-order", body) == again


def test_case_10_a_refund_request_that_crashed_mid_call_is_held_then_answered(client, services, store, cli):
    body = signed_refund(type="refund", transactionid=settled_sale(client, services, store), amounttotal=1000)
    real_refund = services.processor.refund

    def refund_then_die(*args):  # type: ignore[no-untyped-def]
        real_refund(*args)
        raise SystemExit

    services.processor.refund = refund_then_die  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        post_json(client, "/post-order", body)
    services.processor.refund = real_refund  # type: ignore[method-assign]
    age(services, PostOrderRequest, "claimed_at")
    age(services, LedgerEntry, "created_at")
    held = post_json(client, "/post-order", body)
    assert held["approved"] == 0 and "outcome is unknown" in held["errormessage"]
    entry_id = cli("ledger", "unresolved").split("\t")[0]
    cli("ledger", "resolve", entry_id, "--happened", "--note", "seen in the processor's console")
    assert post_json(client, "/post-order", body)["approved"] == 1
    assert sandbox_charge(services).refunded == 1000


def test_case_11_a_reversal_marked_did_not_happen_is_reversed_again(client, services, store, cli):
    token = paid_but_unconfirmed(client, services, store)
    real_void = services.processor.void
    services.processor.void = lambda *a: (_ for _ in ()).throw(ProcessorUnavailable("timeout"))  # type: ignore[method-assign]
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(0))
    make_due(services)
    run_once(services)
    services.processor.void = real_void  # type: ignore[method-assign]
    run_once(services)
    payment = payment_row(services, token)
    assert payment.credentials_sealed is not None and "unknown outcome" in payment.attention
    assert not sandbox_charge(services).voided
    entry_id = cli("ledger", "unresolved").split("\t")[0]
    cli("ledger", "resolve", entry_id, "--did-not-happen", "--note", "no void in the processor's console")
    run_once(services)
    assert sandbox_charge(services).voided
    payment = payment_row(services, token)
    assert payment.credentials_sealed is None and payment.attention == ""
    assert [row[2] for row in ledger_rows(services)] == ["approved", "declined", "approved"]


def test_a_charge_arriving_after_its_attempt_was_resolved_is_flagged_not_lost(client, services, store):
    token, csrf = open_session(client)
    real_sale = services.processor.sale

    def slow_sale(request):  # type: ignore[no-untyped-def]
        with services.db.transaction() as session:  # meanwhile the attempt was resolved as "not charged"
            session.execute(update(Payment).values(state="open"))
        return real_sale(request)

    services.processor.sale = slow_sale  # type: ignore[method-assign]
    assert pay(client, token, csrf).status_code < 500
    payment = payment_row(services, token)
    assert payment.state == "open" and "is not recorded: void it at the processor" in payment.attention
    with services.db.transaction() as session:  # nothing of the charge is written: no charge, entry or notification
        assert session.scalars(select(Charge)).all() == [] and session.scalars(select(LedgerEntry)).all() == []
        assert session.scalars(select(Notification)).all() == []


def test_resolving_a_sale_still_in_flight_is_refused(client, services, store):
    token, _ = open_session(client)
    with services.db.transaction() as session:
        session.execute(update(Payment).values(state="authorizing", attempt=1))
    with pytest.raises(operations.OperationRefused, match="still be in flight"):
        operations.resolve_sale(services, payment_row(services, token).id, charged=False, actor="ops", note="x")
