"""How a charge attempt ends: charged (the charge, its ledger entry, the store's notification and the risk
step's signal in one transaction), declined (open again, or failed after too many declines), or reopened after recovery.

Every end is a guarded move out of ``authorizing`` for this attempt, so an attempt already settled
by someone else (the worker's recovery, an operator) is never settled twice.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam, func, select, true
from sqlalchemy.orm import Session

from .. import budget
from .. import prepared as driver
from ..errorcodes import ErrorCode
from ..models import Charge, LedgerEntry, Notification, Payment, PaymentState, UTCDateTime
from ..models.payments import RESULT_CODE_MAX
from ..notifications import outbox
from ..notifications.outbox import CompleteOrder
from ..processors.base import MerchantAuthenticationError, ProcessorCharge, ProcessorError
from ..services import Services
from . import attention, ledger, risk
from .completion import deliver_if_claimed, enqueue_outcome
from .states import PAYMENTS

log = logging.getLogger(__name__)


def sale_reference(payment_id: int, attempt: int) -> str:
    """Unique per charge attempt (and at most 20 characters, Authorize.Net's refId limit)."""
    return f"ps{payment_id}a{attempt}"




def _approve(**values: Any) -> Any:
    """Recording a charge settles the attempt and reads back what the charge's rows repeat."""
    return PAYMENTS.prepare(
        PaymentState.AUTHORIZING, PaymentState.APPROVED, Payment.attempt == bindparam("this_attempt"),
        returning=(Payment.id, Payment.orderid, Payment.invoice, Payment.amount_total,
                   Payment.notification_url, Payment.card_brand, Payment.card_last4,
                   Payment.card_exp_month, Payment.card_exp_year, Payment.test_mode,
                   Payment.credentials_fingerprint),
        **attention.CLEARED, **values,
    )


_APPROVE = _approve()
# What a charge's row takes from the processor's answer (the rest is the payment's, as the claim left it).
_FROM_ANSWER = ("processor", "processor_transaction_id", "currency", "amount", "avs_result", "cvv_result")
_NEW_CHARGE = driver.insert_of(Charge, (
    "payment_id", "orderid", "invoice", "card_brand", "card_last4", "card_exp_month", "card_exp_year", "test_mode",
    "credentials_fingerprint", *_FROM_ANSWER), returning=(Charge.id,))
_SALE_ENTRY = ("kind", "amount", "outcome", "processor_ref", "message")
_NEW_SALE_ENTRY = driver.insert_of(LedgerEntry, ("charge_id", *_SALE_ENTRY))
_NOTIFIED = ("payment_id", "url", "payload", "next_attempt_at", "claimed_until", "lease")


def _charged_in_one_statement(with_signal: bool) -> Any:
    """PostgreSQL's record of a charge: the move to ``approved``, the charge, its ledger entry, the store's
    notification (and the risk step's signal) in one statement, one round trip instead of seven. Every
    insert but the signal's writes one row per row the move returned: none if the attempt was resolved."""
    now = bindparam("now", type_=UTCDateTime())
    approved = _approve(updated_at=now).cte("approved")  # a statement's own defaults only: none for its CTEs
    charge = driver.insert_from(Charge, approved, {
        **{name: approved.c[name] for name in ("orderid", "invoice", "card_brand", "card_last4", "test_mode",
                                               "credentials_fingerprint")},
        "payment_id": approved.c.id,
        "card_exp_month": func.coalesce(approved.c.card_exp_month, 0),
        "card_exp_year": func.coalesce(approved.c.card_exp_year, 0),
        **_parameters(Charge, _FROM_ANSWER),
    }, now).returning(Charge.id).cte("charge")
    entry = driver.insert_from(LedgerEntry, charge, {"charge_id": charge.c.id, **_parameters(LedgerEntry, _SALE_ENTRY, "entry_")},
                               now)  # "entry_": the risk signal has an outcome of its own
    notified = driver.insert_from(Notification, approved, _parameters(Notification, _NOTIFIED), now)
    notification = notified.returning(Notification.id).cte("notification")
    read = (select(*approved.c, notification.c.id.label("notification_id"))
            .select_from(approved.join(notification, true()))
            .add_cte(entry.cte("entry")))
    return driver.hot(read.add_cte(risk.REMEMBER.cte("signal")) if with_signal else read, only="postgresql")


def _parameters(model: Any, names: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    """Each named column from the parameter of its name (after ``prefix``), typed as the column
    (PostgreSQL cannot infer a parameter's type in a SELECT's list)."""
    return {name: bindparam(prefix + name, type_=model.__table__.c[name].type) for name in names}


_CHARGED = {False: _charged_in_one_statement(False), True: _charged_in_one_statement(True)}


def record_charge(services: Services, payment: Payment, attempt: int, charge: ProcessorCharge,
                  risk_signal: dict[str, Any] | None = None) -> Notification | None:
    """Record an approved charge with its notification, and the risk step's signal of the attempt if given
    (one commit fewer before the store is told); None (and flagged) if the attempt was resolved meanwhile.
    The notification comes back claimed for delivery if this request has time to send it.

    ``payment`` is the payment as read at any time since its checkout: the notification repeats only what
    a checkout fixed (order, invoice, total, notification URL); the charge's card is read as the move
    leaves it. Plain statements built once, run on the driver: the rows are written here and never read
    back through a session."""
    answer = {"processor": services.processor.name, "processor_transaction_id": charge.processor_transaction_id,
              "currency": charge.currency, "amount": charge.amount,
              # Cut to what the column holds: an odd code must never cost the record of money taken.
              "avs_result": charge.avs_result[:RESULT_CODE_MAX], "cvv_result": charge.cvv_result[:RESULT_CODE_MAX]}
    entry = {"kind": ledger.SALE, "amount": charge.amount, "outcome": ledger.APPROVED,
             "processor_ref": charge.processor_transaction_id, "message": charge.message}
    message = CompleteOrder(orderid=payment.orderid, invoice=payment.invoice, amount=payment.amount_total,
                            approved=True, transactionid=charge.processor_transaction_id)
    notified = services.outbox.new(payment.id, payment.notification_url, message, claimed=budget.allows_call())
    moved = {"row_id": payment.id, "this_attempt": attempt}
    if services.db.dialect == "postgresql":
        with services.db.core_statement() as connection:
            row = driver.run(connection, _CHARGED[risk_signal is not None], {
                **moved, **answer, **{f"entry_{name}": value for name, value in entry.items()}, **notified,
                **(risk_signal or {}), "now": notified["next_attempt_at"]}).first()
        notification_id = None if row is None else row.notification_id
    else:
        notification_id = _charged_in_a_transaction(services, moved, answer, entry, notified, risk_signal)
    if notification_id is None:
        with services.db.transaction() as session:
            attention.flag(session, payment.id, f"charge {charge.processor_transaction_id} of {charge.amount} {charge.currency} "
                           f"arrived after attempt {attempt} was resolved and is not recorded: void it at the processor")
        return None
    log.info("order %s charged: %s %s", payment.orderid, charge.processor_transaction_id, charge.amount)
    return services.outbox.written(notified, notification_id)


def _charged_in_a_transaction(services: Services, moved: dict[str, Any], answer: dict[str, Any], entry: dict[str, Any],
                              notified: dict[str, Any], risk_signal: dict[str, Any] | None) -> int | None:
    """SQLite's record of a charge, the same rows one statement at a time: the notification's id, or None."""
    with services.db.transaction() as session:
        connection = session.connection()
        if risk_signal is not None:
            risk.record(session, risk_signal)
        payment = PAYMENTS.run(session, _APPROVE, moved["row_id"], this_attempt=moved["this_attempt"]).first()
        if payment is None:
            return None
        card = {name: getattr(payment, name) for name in ("orderid", "invoice", "card_brand", "card_last4", "test_mode",
                                                          "credentials_fingerprint")}
        charge_id = driver.run(connection, _NEW_CHARGE, {
            **card, **answer, "payment_id": payment.id,
            "card_exp_month": payment.card_exp_month or 0, "card_exp_year": payment.card_exp_year or 0}).scalar_one()
        driver.run(connection, _NEW_SALE_ENTRY, {**entry, "charge_id": charge_id})
        return int(driver.run(connection, outbox.NEW_NOTIFICATION, notified).scalar_one())


def record_decline(services: Services, payment_id: int, error: ProcessorError) -> None:
    """A declined attempt: the payment is open again, or failed (and the store told) once the merchant's
    credentials were refused or the shopper used up their declines. Refused credentials are the
    merchant's problem, not a decline of the shopper's card: they are not counted as one."""
    notification = None
    refused = isinstance(error, MerchantAuthenticationError)
    with services.db.transaction() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        declines = payment.decline_count + (0 if refused else 1)
        give_up = refused or declines >= services.settings.max_declines
        state = PaymentState.FAILED if give_up else PaymentState.OPEN
        payment = leave_authorizing(session, payment_id, payment.attempt, state)
        payment.decline_count = declines
        payment.last_decline = "" if refused else error.message
        if give_up:
            payment.credentials_sealed = None
            code = ErrorCode.MERCHANT_AUTHENTICATION if refused else ErrorCode.CARD_DECLINED
            payment.error_code, payment.error_message = code.value, error.merchant_message
            notification = enqueue_outcome(session, services, payment, approved=False, errorcode=code.value,
                                           errormessage=error.merchant_message, claimed=budget.allows_call())
        log.info("order %s attempt %s declined (%s)", payment.orderid, payment.attempt, error.code)
    if notification is not None:
        deliver_if_claimed(services, notification)


def leave_authorizing(session: Session, payment_id: int, attempt: int, target: PaymentState) -> Payment:
    """Leave ``authorizing`` for this attempt; the guard makes a stale writer fail loudly."""
    payment: Payment | None = PAYMENTS.move_and_load(session, payment_id, PaymentState.AUTHORIZING, target,
                                                             Payment.attempt == attempt)
    if payment is None:
        raise RuntimeError(f"payment {payment_id} left 'authorizing' behind our back")
    return payment
