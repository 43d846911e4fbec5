"""How a charge attempt ends: charged (the charge, its ledger entry, the store's notification and the risk
step's signal in one transaction), declined (open again, or failed after too many declines), or reopened after recovery.

Every end is a guarded move out of ``authorizing`` for this attempt, so an attempt already settled
by someone else (the worker's recovery, an operator) is never settled twice.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.orm import Session

from .. import budget
from .. import prepared as driver
from ..errorcodes import ErrorCode
from ..models import Charge, LedgerEntry, Notification, Payment, PaymentState
from ..models.payments import RESULT_CODE_MAX
from ..processors.base import MerchantAuthenticationError, ProcessorCharge, ProcessorError
from ..services import Services
from . import attention, ledger, risk
from .completion import deliver_if_claimed, enqueue_outcome
from .states import PAYMENTS

log = logging.getLogger(__name__)


def sale_reference(payment_id: int, attempt: int) -> str:
    """Unique per charge attempt (and at most 20 characters, Authorize.Net's refId limit)."""
    return f"ps{payment_id}a{attempt}"


# Recording a charge settles the attempt and reads back what the charge's rows repeat.
_APPROVE = PAYMENTS.prepare(
    PaymentState.AUTHORIZING, PaymentState.APPROVED, Payment.attempt == bindparam("this_attempt"),
    returning=(Payment.id, Payment.orderid, Payment.invoice, Payment.amount_total,
               Payment.notification_url, Payment.card_brand, Payment.card_last4,
               Payment.card_exp_month, Payment.card_exp_year, Payment.test_mode,
               Payment.credentials_fingerprint),
    **attention.CLEARED,
)
_NEW_CHARGE = driver.insert_of(Charge, (
    "payment_id", "processor", "processor_transaction_id", "orderid", "invoice", "currency", "amount", "card_brand",
    "card_last4", "card_exp_month", "card_exp_year", "avs_result", "cvv_result", "test_mode", "credentials_fingerprint",
), returning=(Charge.id,))
_NEW_SALE_ENTRY = driver.insert_of(LedgerEntry, ("charge_id", "kind", "amount", "outcome", "processor_ref", "message"))


def record_charge(services: Services, payment_id: int, attempt: int, charge: ProcessorCharge,
                  risk_signal: dict[str, Any] | None = None) -> Notification | None:
    """Record an approved charge with its notification, and the risk step's signal of the attempt if given
    (one commit fewer before the store is told); None (and flagged) if the attempt was resolved meanwhile.
    The notification comes back claimed for delivery if this request has time to send it.
    Plain statements built once, run on the driver: the rows are written here and never read back through this session."""
    with services.db.transaction() as session:
        if risk_signal is not None:
            risk.record(session, risk_signal)
        payment = PAYMENTS.run(session, _APPROVE, payment_id, this_attempt=attempt).first()
        if payment is None:
            attention.flag(session, payment_id, f"charge {charge.processor_transaction_id} of {charge.amount} {charge.currency} "
                           f"arrived after attempt {attempt} was resolved and is not recorded: void it at the processor")
            return None
        charge_id = driver.run(session.connection(), _NEW_CHARGE, {
            "payment_id": payment.id,
            "processor": services.processor.name,
            "processor_transaction_id": charge.processor_transaction_id,
            "orderid": payment.orderid,
            "invoice": payment.invoice,
            "currency": charge.currency,
            "amount": charge.amount,
            "card_brand": payment.card_brand,
            "card_last4": payment.card_last4,
            "card_exp_month": payment.card_exp_month or 0,
            "card_exp_year": payment.card_exp_year or 0,
            # Cut to what the column holds: an odd code must never cost the record of money taken.
            "avs_result": charge.avs_result[:RESULT_CODE_MAX],
            "cvv_result": charge.cvv_result[:RESULT_CODE_MAX],
            "test_mode": payment.test_mode,
            "credentials_fingerprint": payment.credentials_fingerprint,
        }).scalar_one()
        driver.run(session.connection(), _NEW_SALE_ENTRY, {
            "charge_id": charge_id,
            "kind": ledger.SALE,
            "amount": charge.amount,
            "outcome": ledger.APPROVED,
            "processor_ref": charge.processor_transaction_id,
            "message": charge.message,
        })
        notification = enqueue_outcome(session, services, payment, approved=True, transactionid=charge.processor_transaction_id,
                                       claimed=budget.allows_call())
        log.info("order %s charged: %s %s", payment.orderid, charge.processor_transaction_id, charge.amount)
        return notification


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
