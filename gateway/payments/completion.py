"""Exchange 3: telling the store how the payment ended, and acting on its CompleteOrderResponse."""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from .. import budget
from ..models import LedgerEntry, Notification, PaymentSession, SessionState, Transaction, utcnow
from ..notifications import outbox
from ..notifications.client import StoreAnswer
from ..money import format_money
from ..processors.base import AdjustmentRefused, MerchantAuthenticationError, ProcessorUnavailable
from ..protocol.messages import complete_order_request
from ..services import Services
from . import attention, ledger
from .adjustments import charge_ref, execute_adjustment, resume_void
from .states import SESSIONS

log = logging.getLogger(__name__)
# Completing is the only way into `completed`, so the credentials of a completed payment are gone.
_COMPLETE = SESSIONS.prepare(SessionState.APPROVED, SessionState.COMPLETED, credentials_sealed=None, **attention.CLEARED)


def enqueue_outcome(
    session: Session,
    services: Services,
    payment: PaymentSession | Row[Any],
    *,
    approved: bool,
    transactionid: str = "",
    errorcode: str = "",
    errormessage: str = "",
    claimed: bool,
) -> Notification:
    """Write the signed CompleteOrderRequest in the same transaction that records the outcome
    (``claimed``: with the delivery lease taken, for :func:`deliver_claimed` right after commit)."""
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
    return outbox.enqueue(services, session, payment.id, payment.notification_url, payload, claimed=claimed)


def apply_store_answer(session: Session, notification: Notification, answer: StoreAnswer) -> None:
    """processed=1 completes an approved payment; processed=0 rejects it (its charge is then voided).

    For a payment that had already failed, the store's error code is kept for the shopper's errorurl.
    """
    if answer.processed:
        SESSIONS.run(session, _COMPLETE, notification.session_id)
        return
    moved = SESSIONS.move(session, notification.session_id, SessionState.APPROVED, SessionState.REJECTED)
    payment = session.get(PaymentSession, notification.session_id, populate_existing=True)
    assert payment is not None
    if moved and payment.credentials_sealed is None:
        attention.flag(session, payment.id, "the store rejected the order after the merchant credentials were erased "
                       "(the charge had been kept): return the money at the processor, then record it by hand")
    elif moved:
        attention.clear(session, payment.id)
    if answer.errorcode:
        payment.error_code = answer.errorcode[:64]
        payment.error_message = answer.errormessage[:2000]


def notify_store(services: Services, notification_id: int, *, only_due: bool = False) -> StoreAnswer | None:
    """Deliver one notification now, unless it is not due, somebody else is delivering it, or the
    shopper's request has no time left for it (the delivery worker then sends it)."""
    if not budget.allows_call():
        return None
    claimed = outbox.claim(services, notification_id, only_due=only_due)
    return None if claimed is None else deliver_claimed(services, claimed)


def deliver_if_claimed(services: Services, notification: Notification) -> StoreAnswer | None:
    """Deliver a notification just written claimed; one written unclaimed (no time left in the
    shopper's request) is the delivery worker's."""
    return None if notification.claimed_until is None else deliver_claimed(services, notification)


def deliver_claimed(services: Services, notification: Notification) -> StoreAnswer | None:
    """Post a claimed notification and finish what the store's answer asks for."""
    answer = outbox.deliver(services, notification, apply_store_answer)
    if answer is not None and not answer.processed:
        _reverse_isolated(services, notification.session_id)
    return answer


def reverse_unfinished_rejections(services: Services) -> int:
    """Rejected orders whose charge is still standing (a crash after the store said no): reverse each
    on its own, so one that cannot be reversed stops no other."""
    now = utcnow()
    with services.db.transaction() as session:
        ids = session.scalars(
            select(PaymentSession.id)
            .join(Transaction, Transaction.session_id == PaymentSession.id)
            .where(
                PaymentSession.state == SessionState.REJECTED.value,
                PaymentSession.credentials_sealed.is_not(None),
                attention.due(now),
            )
        ).all()
    return sum(_reverse_isolated(services, session_id) for session_id in ids)


def _reverse_isolated(services: Services, session_id: int) -> bool:
    return attention.isolated(services, session_id, "reversing the rejected charge",
                              lambda: reverse_rejected_charge(services, session_id))


def reverse_rejected_charge(services: Services, session_id: int) -> None:
    """The store refused the order after we charged: give back what is left of the charge, exactly once.

    The merchant credentials are kept until the money is back: a reversal whose outcome is unknown
    waits for an operator, and if it did not happen the next round reverses again."""
    with services.db.transaction() as session:
        payment = session.get(PaymentSession, session_id)
        transaction = session.scalars(select(Transaction).where(Transaction.session_id == session_id)).first()
        if payment is None or payment.state != SessionState.REJECTED.value or transaction is None:
            return
        if payment.credentials_sealed is None:
            return
        current = ledger.balance(session, ledger.lock_transaction(session, transaction.id))
        unsettled = ledger.unsettled_entry(session, transaction.id)
        if unsettled is not None and ledger.is_in_flight(unsettled):
            return  # another process is moving money on it right now
        if unsettled is not None and not (unsettled.kind == ledger.VOID and unsettled.outcome == ledger.PENDING):
            _hold_for_operator(session, session_id, unsettled, transaction.currency)
            return
        if unsettled is None and current.remaining <= 0:
            payment.credentials_sealed = None
            attention.clear(session, session_id)
            return
        credentials = services.vault.open(payment.credentials_sealed)
    ref = charge_ref(transaction)
    if unsettled is not None:  # a void whose process died mid-call; the next round sees its outcome
        resume_void(services, unsettled.id, ref, credentials)
        return
    try:
        kind = ledger.REFUND if current.refunded or services.processor.is_settled(ref, credentials) else ledger.VOID
        amount = current.remaining if kind == ledger.REFUND else transaction.amount
        execute_adjustment(services, transaction.id, ref, kind, amount, credentials, request_key="store-rejected")
    except (AdjustmentRefused, MerchantAuthenticationError) as exc:
        money = format_money(current.remaining, transaction.currency)
        with services.db.transaction() as session:
            attention.flag(session, session_id, f"the store rejected the order, but returning {money} was refused: "
                           f"{exc.merchant_message}; return it at the processor, then record it by hand")
        return
    except ProcessorUnavailable:
        with services.db.transaction() as session:
            unsettled = ledger.unsettled_entry(session, transaction.id)
            if unsettled is None:
                raise  # nothing was reserved (the settlement check failed): retried after the backoff
            _hold_for_operator(session, session_id, unsettled, transaction.currency)
        return
    with services.db.transaction() as session:
        _forget_credentials(session, session_id)
        attention.clear(session, session_id)


def _hold_for_operator(session: Session, session_id: int, entry: LedgerEntry, currency: str) -> None:
    """A reversal of unknown outcome: the credentials stay, and an operator's "did not happen" reverses again."""
    money = format_money(entry.amount, currency)
    attention.flag(session, session_id, f"the store rejected the order; the {entry.kind} of {money} "
                   f"(ledger entry {entry.id}) has an unknown outcome: check the processor and resolve it")


def _forget_credentials(session: Session, session_id: int) -> None:
    session.execute(update(PaymentSession).where(PaymentSession.id == session_id).values(credentials_sealed=None))
