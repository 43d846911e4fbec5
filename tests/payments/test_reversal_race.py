"""Issue 19, item 9: a reversal refused because another one (or the merchant) moved the money first reads
the ledger before it asks an operator to return the money by hand."""
from __future__ import annotations

import threading
from typing import Any, Callable

from sqlalchemy import select

from gateway.models import LedgerEntry, Payment, SandboxCharge
from gateway.payments.reversal import reverse_isolated, reverse_unfinished_rejections

from .. import factories
from ..protocol_helpers import post_json, signed_refund


def rejected_charge(services: Any) -> tuple[int, str]:
    """A charge of the example order that the store rejected, not yet reversed: (payment id, transaction id)."""
    with factories.bound(services):
        charge = factories.paid_charge(state="rejected")
        return charge.payment_id, charge.processor_transaction_id


def reverse_overtaken_by(services: Any, payment_id: int, winner: Callable[[], object]) -> bool:
    """Reverse the charge in a thread of its own, holding it at its settlement check (it has read the ledger
    and not yet reserved) while ``winner`` runs here; whether the reversal ended without an error."""
    real_is_settled = services.processor.is_settled
    asking, won = threading.Event(), threading.Event()
    ended: list[bool] = []

    def is_settled(*args: Any) -> bool:
        if threading.current_thread() is not threading.main_thread():
            asking.set()
            assert won.wait(10)
        return bool(real_is_settled(*args))

    services.processor.is_settled = is_settled
    loser = threading.Thread(target=lambda: ended.append(reverse_isolated(services, payment_id)))
    loser.start()
    try:
        assert asking.wait(10)
        winner()
    finally:
        won.set()
        loser.join(10)
        services.processor.is_settled = real_is_settled
    return ended == [True]


def ledger_rows(services: Any) -> list[tuple[str, int, str]]:
    with services.db.transaction() as session:
        return [(e.kind, e.amount, e.outcome) for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))]


def payment(services: Any, payment_id: int) -> Payment:
    with services.db.transaction() as session:
        row = session.get(Payment, payment_id)
        assert row is not None
        return row


def sandbox_charge(services: Any) -> SandboxCharge:
    with services.db.transaction() as session:
        return session.scalars(select(SandboxCharge)).one()


def test_the_loser_of_two_racing_reversals_finds_the_void_booked_and_flags_nothing(services):
    payment_id, _ = rejected_charge(services)
    assert reverse_overtaken_by(services, payment_id, lambda: reverse_isolated(services, payment_id))
    assert ledger_rows(services) == [("sale", 12312, "approved"), ("void", 12312, "approved")]
    assert sandbox_charge(services).voided is True
    reversed_payment = payment(services, payment_id)
    assert reversed_payment.attention == "" and reversed_payment.attention_at is None
    assert reversed_payment.credentials_sealed is None


def test_a_reversal_overtaken_by_a_merchant_refund_returns_the_rest_next_round(client, services):
    payment_id, transactionid = rejected_charge(services)
    services.processor.settle()

    def merchant_refunds_part() -> None:
        answer = post_json(client, "/post-order", signed_refund(
            type="refund", transactionid=transactionid, amounttotal=2312, is_full_refund=False))
        assert answer["approved"] == 1, answer

    assert reverse_overtaken_by(services, payment_id, merchant_refunds_part)
    assert payment(services, payment_id).attention == ""  # its stale amount was refused: nothing to do by hand
    assert reverse_unfinished_rejections(services) == 1
    assert ledger_rows(services)[1:] == [("refund", 2312, "approved"), ("refund", 10000, "approved")]
    assert sandbox_charge(services).refunded == 12312
    reversed_payment = payment(services, payment_id)
    assert reversed_payment.attention == "" and reversed_payment.credentials_sealed is None
