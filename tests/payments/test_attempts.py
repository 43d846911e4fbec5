"""How a charge attempt ends: what an approval keeps of the processor's answer."""
from __future__ import annotations

import pytest
from sqlalchemy import event, select

from gateway.models import Charge, LedgerEntry, Notification, Payment, PaymentState
from gateway.payments.attempts import record_charge
from gateway.processors.base import ProcessorCharge

from .. import factories


def approval_recorded(services, avs: str, cvv: str) -> Charge:  # type: ignore[no-untyped-def]
    """An attempt in flight whose sale the processor approved with these AVS and CVV codes."""
    with factories.bound(services):
        payment = factories.PaymentFactory(state="authorizing", attempt=1, card_brand="visa", card_last4="4242",
                                           card_exp_month=12, card_exp_year=2039)
    answer = ProcessorCharge("60123456789", payment.amount_total, payment.currency, "visa", "4242",
                             avs_result=avs, cvv_result=cvv)
    assert record_charge(services, payment, 1, answer) is not None
    with services.db.transaction() as session:
        return session.scalars(select(Charge).where(Charge.payment_id == payment.id)).one()


def test_an_approval_keeps_its_avs_and_cvv_results(services):
    charge = approval_recorded(services, "N", "N")
    assert (charge.avs_result, charge.cvv_result, charge.processor_transaction_id) == ("N", "N", "60123456789")


def test_an_overlong_result_code_never_costs_the_charge_its_record(services):
    charge = approval_recorded(services, "YYYYYY", "")
    assert (charge.avs_result, charge.cvv_result) == ("YYYY", "")


def test_on_postgresql_a_charge_its_entry_and_its_notification_are_one_statement(services):
    """One round trip (the move, the charge, its ledger entry, the notification, in one statement) instead of
    seven (BEGIN, five statements, COMMIT) while the shopper and the store wait."""
    if services.db.dialect != "postgresql":
        pytest.skip("SQLite has no INSERT inside a WITH: there it is one transaction")
    with factories.bound(services):
        payment = factories.PaymentFactory(state="authorizing", attempt=1, card_brand="visa", card_last4="4242",
                                           card_exp_month=12, card_exp_year=2039)
    statements: list[str] = []
    listener = lambda _conn, _cursor, statement, *_rest: statements.append(statement)  # noqa: E731
    event.listen(services.db.engine, "before_cursor_execute", listener)
    try:
        notification = record_charge(services, payment, 1, ProcessorCharge("60123", payment.amount_total, payment.currency,
                                                                           "visa", "4242", message="approved"))
    finally:
        event.remove(services.db.engine, "before_cursor_execute", listener)
    assert len(statements) == 1
    with services.db.transaction() as session:
        charge = session.scalars(select(Charge).where(Charge.payment_id == payment.id)).one()
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.charge_id == charge.id)).one()
        stored = session.get(Notification, notification.id)
        assert (charge.card_exp_year, charge.amount, entry.amount, entry.message) == (2039, payment.amount_total, payment.amount_total, "approved")
        assert stored.payload == notification.payload and stored.payload["transactionid"] == "60123"
        assert session.get(Payment, payment.id).state == PaymentState.APPROVED
