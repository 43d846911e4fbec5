"""Exchange 3: telling the store how the payment ended, and acting on its CompleteOrderResponse."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import budget
from ..models import Notification, PaymentSession, SessionState, Transaction, utcnow
from ..notifications import outbox
from ..notifications.client import StoreAnswer
from ..processors.base import ProcessorError
from ..protocol.messages import complete_order_request
from ..services import Services
from . import ledger
from .adjustments import charge_ref, execute_adjustment, resume_void

log = logging.getLogger(__name__)
INTERRUPTED_AFTER = timedelta(minutes=2)  # longer than any processor call may take


def enqueue_outcome(
    session: Session,
    services: Services,
    payment: PaymentSession,
    *,
    approved: bool,
    transactionid: str = "",
    errorcode: str = "",
    errormessage: str = "",
) -> Notification:
    """Write the signed CompleteOrderRequest in the same transaction that records the outcome."""
    payload = complete_order_request(
        services.settings.private_key,
        orderid=payment.orderid,
        invoice=payment.invoice,
        amount=payment.amount_total,
        approved=approved,
        transactionid=transactionid,
        errorcode=errorcode,
        errormessage=errormessage,
    )
    return outbox.enqueue(session, payment.id, payment.notification_url, payload)


def apply_store_answer(session: Session, notification: Notification, answer: StoreAnswer) -> None:
    """processed=1 completes an approved payment; processed=0 rejects it (its charge is then voided).

    For a payment that had already failed, the store's error code is kept for the shopper's errorurl.
    """
    payment = session.get(PaymentSession, notification.session_id, populate_existing=True, with_for_update=True)
    assert payment is not None
    if payment.state == SessionState.APPROVED.value:
        payment.state = (SessionState.COMPLETED if answer.processed else SessionState.REJECTED).value
    if not answer.processed and answer.errorcode:
        payment.error_code = answer.errorcode[:64]
        payment.error_message = answer.errormessage[:2000]
    if payment.state == SessionState.COMPLETED.value:
        payment.credentials_sealed = None


def notify_store(services: Services, notification_id: int, *, only_due: bool = False) -> StoreAnswer | None:
    """Deliver one notification now, unless it is not due, somebody else is delivering it, or the
    shopper's request has no time left for it (the delivery worker then sends it)."""
    if not budget.allows_call():
        return None
    claimed = outbox.claim(services, notification_id, only_due=only_due)
    return None if claimed is None else deliver_claimed(services, claimed)


def deliver_claimed(services: Services, notification: Notification) -> StoreAnswer | None:
    """Post a claimed notification and finish what the store's answer asks for."""
    answer = outbox.deliver(services, notification, apply_store_answer)
    if answer is not None and not answer.processed:
        reverse_rejected_charge(services, notification.session_id)
    return answer


def reverse_unfinished_rejections(services: Services) -> int:
    """Rejected orders whose charge is still standing (a crash after the store said no): reverse them."""
    with services.db.transaction() as session:
        ids = session.scalars(
            select(PaymentSession.id)
            .join(Transaction, Transaction.session_id == PaymentSession.id)
            .where(PaymentSession.state == SessionState.REJECTED.value, PaymentSession.credentials_sealed.is_not(None))
        ).all()
    for session_id in ids:
        reverse_rejected_charge(services, session_id)
    return len(ids)


def reverse_rejected_charge(services: Services, session_id: int) -> None:
    """The store refused the order after we charged: give the money back, exactly once."""
    with services.db.transaction() as session:
        payment = session.get(PaymentSession, session_id)
        transaction = session.scalars(select(Transaction).where(Transaction.session_id == session_id)).first()
        if payment is None or payment.state != SessionState.REJECTED.value or transaction is None:
            return
        if payment.credentials_sealed is None:
            return
        credentials = services.vault.open(payment.credentials_sealed)
        current = ledger.balance(session, ledger.lock_transaction(session, transaction.id))
        pending = ledger.pending_entry(session, transaction.id, ledger.VOID)
        if pending is not None and pending.created_at > utcnow() - INTERRUPTED_AFTER:
            return  # another process is voiding it right now
        if pending is None and (current.voided or current.remaining <= 0):
            payment.credentials_sealed = None
            return
    ref = charge_ref(transaction)
    if pending is not None:  # its process died mid-call
        if resume_void(services, pending.id, ref, credentials):
            with services.db.transaction() as session:
                _forget_credentials(session, session_id)
        return
    try:
        settled = services.processor.is_settled(ref, credentials)
        kind = ledger.REFUND if settled else ledger.VOID
        execute_adjustment(services, transaction.id, ref, kind, transaction.amount, credentials, request_key="store-rejected")
    except ProcessorError as exc:
        log.error("could not reverse rejected charge %s: %s", transaction.processor_txn_id, exc.merchant_message)
        return
    with services.db.transaction() as session:
        _forget_credentials(session, session_id)


def _forget_credentials(session: Session, session_id: int) -> None:
    session.execute(update(PaymentSession).where(PaymentSession.id == session_id).values(credentials_sealed=None))
