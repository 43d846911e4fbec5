"""Exchange 3: telling the store how the payment ended, and acting on its CompleteOrderResponse
(a rejected order's charge is given back by :mod:`.reversal`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from .. import budget
from ..models import Notification, Payment, PaymentState
from ..notifications.exchange import StoreAnswer
from ..notifications.outbox import CompleteOrder
from ..services import Services
from . import attention
from .reversal import reverse_isolated
from .states import PAYMENTS

log = logging.getLogger(__name__)
# Completing is the only way into `completed`, so the credentials of a completed payment are gone.
_COMPLETE = PAYMENTS.prepare(PaymentState.APPROVED, PaymentState.COMPLETED, credentials_sealed=None, **attention.CLEARED)


def enqueue_outcome(
    session: Session,
    services: Services,
    payment: Payment | Row[Any],
    *,
    approved: bool,
    transactionid: str = "",
    errorcode: str = "",
    errormessage: str = "",
    claimed: bool,
) -> Notification:
    """Write the store's notification in the same transaction that records the outcome
    (``claimed``: with the delivery lease taken, for :func:`deliver_claimed` right after commit)."""
    message = CompleteOrder(orderid=payment.orderid, invoice=payment.invoice, amount=payment.amount_total,
                            approved=approved, transactionid=transactionid, errorcode=errorcode, errormessage=errormessage)
    return services.outbox.enqueue(session, payment.id, payment.notification_url, message, claimed=claimed)


@dataclass(frozen=True)
class Delivery:
    """The store's answer, and whether it moved the payment to ``completed``: the pay page's answer
    is then the returnurl, without reading the payment again."""

    answer: StoreAnswer
    completed: bool


def apply_store_answer(session: Session, notification: Notification, answer: StoreAnswer) -> bool:
    """processed=1 completes an approved payment; processed=0 rejects it (its charge is then voided).
    True if this answer completed the payment.

    For a payment that had already failed, the store's error code is kept for the shopper's errorurl.
    """
    if answer.processed:
        return PAYMENTS.run(session, _COMPLETE, notification.payment_id).rowcount == 1
    moved = PAYMENTS.move(session, notification.payment_id, PaymentState.APPROVED, PaymentState.REJECTED)
    payment = session.get(Payment, notification.payment_id, populate_existing=True)
    assert payment is not None
    if moved and payment.credentials_sealed is None:
        attention.flag(session, payment.id, "the store rejected the order after the merchant credentials were erased "
                       "(the charge had been kept): return the money at the processor, then record it by hand")
    elif moved:
        attention.clear(session, payment.id)
    if answer.errorcode:
        payment.error_code = answer.errorcode[:64]
        payment.error_message = answer.errormessage[:2000]
    return False


def notify_store(services: Services, notification_id: int, *, only_due: bool = False) -> Delivery | None:
    """Deliver one notification now, unless it is not due, somebody else is delivering it, or the
    shopper's request has no time left for it (the delivery worker then sends it)."""
    if not budget.allows_call():
        return None
    claimed = services.outbox.claim(notification_id, only_due=only_due)
    return None if claimed is None else deliver_claimed(services, claimed)


def deliver_if_claimed(services: Services, notification: Notification) -> Delivery | None:
    """Deliver a notification just written claimed; one written unclaimed (no time left in the
    shopper's request) is the delivery worker's."""
    return None if notification.claimed_until is None else deliver_claimed(services, notification)


def deliver_claimed(services: Services, notification: Notification) -> Delivery | None:
    """Post a claimed notification and finish what the store's answer asks for; None if the store's
    answer was not recorded (no answer, or this delivery's lease was lost)."""
    completed = False

    def apply(session: Session, row: Notification, answer: StoreAnswer) -> None:
        nonlocal completed
        completed = apply_store_answer(session, row, answer)

    answer = services.outbox.deliver(notification, apply)
    if answer is None:
        return None
    if not answer.processed:
        reverse_isolated(services, notification.payment_id)
    return Delivery(answer, completed)
