"""Operator actions, for the `gateway` CLI and the web console alike.

Each takes the acting operator and a note or reason, goes through the same guarded moves as the
gateway itself (so an action can never race a worker into moving money twice), and raises
:class:`OperationRefused` with a sentence the operator can act on when it cannot be done.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from ..models import Charge, LedgerEntry, Notification, Payment, PaymentState, utcnow
from ..processors.base import ProcessorCharge
from ..services import Services
from . import attention, ledger
from .attempts import leave_authorizing, record_charge
from .completion import deliver_if_claimed
from .recovery import STALE_AFTER
from .unconfirmed import apply_policy

log = logging.getLogger(__name__)


class OperationRefused(Exception):
    """The action does not apply to the item as it is now; the message says why."""


def requeue_notification(services: Services, notification_id: int, *, actor: str, note: str) -> None:
    """Send a dead notification again from its first attempt (after the store was fixed, say)."""
    if not services.outbox.requeue(notification_id):
        raise OperationRefused(f"notification {notification_id} is not dead")
    with services.db.transaction() as session:
        payment_id = session.get(Notification, notification_id).payment_id  # type: ignore[union-attr]
        attention.clear(session, payment_id)
    log.info("%s requeued notification %s: %s", actor, notification_id, note)


def resolve_ledger_entry(services: Services, entry_id: int, *, happened: bool, actor: str, note: str) -> LedgerEntry:
    """Record what the operator found at the processor for a void or refund of unknown outcome."""
    with services.db.transaction() as session:
        try:
            entry = ledger.resolve(session, entry_id, happened, f"{actor}: {note}")
        except ledger.LedgerConflict as exc:
            raise OperationRefused(str(exc)) from exc
        payment_id = session.get(Charge, entry.charge_id).payment_id  # type: ignore[union-attr]
        attention.clear(session, payment_id)  # a rejected order's reversal is tried again if this did not happen
    log.info("%s resolved ledger entry %s as %s: %s", actor, entry_id, entry.outcome, note)
    return entry


def acknowledge_ledger_conflict(services: Services, entry_id: int, *, actor: str, note: str) -> None:
    """The operator corrected the books after a late processor answer contradicted a resolution."""
    with services.db.transaction() as session:
        entry = session.get(LedgerEntry, entry_id)
        if entry is None or not entry.attention:
            raise OperationRefused(f"ledger entry {entry_id} does not need attention")
        entry.message = f"{entry.message} | {entry.attention} | acknowledged by {actor}: {note}"[:1000]
        entry.attention = ""
    log.info("%s acknowledged ledger entry %s: %s", actor, entry_id, note)


def resolve_sale(services: Services, payment_id: int, *, charged: bool, processor_transaction_id: str = "",
                 actor: str, note: str) -> str:
    """Settle a charge attempt whose outcome the gateway could not learn, from the processor's own records."""
    if charged and not processor_transaction_id:
        raise OperationRefused("give the processor's transaction id of the charge")
    with services.db.transaction() as session:
        payment = session.get(Payment, payment_id)
        if payment is None or payment.state != PaymentState.AUTHORIZING:
            raise OperationRefused(f"payment {payment_id} is not waiting for a charge's outcome")
        if payment.updated_at > utcnow() - STALE_AFTER:
            raise OperationRefused(f"payment {payment_id}'s charge may still be in flight; check again in a few minutes")
        attempt = payment.attempt
        if not charged:
            leave_authorizing(session, payment_id, attempt, PaymentState.OPEN)
            attention.clear(session, payment_id)
    if charged:
        charge = ProcessorCharge(processor_transaction_id, payment.amount_total, payment.currency, payment.card_brand, payment.card_last4,
                        message=f"recorded by {actor}: {note}")
        notification = record_charge(services, payment, attempt, charge)
        if notification is None:
            raise OperationRefused(f"payment {payment_id} was resolved meanwhile")
        deliver_if_claimed(services, notification)
    log.info("%s resolved the sale of payment %s as %s: %s", actor, payment_id, "charged" if charged else "not charged", note)
    return PaymentState.APPROVED if charged else PaymentState.OPEN


def reverse_charge(services: Services, payment_id: int, *, actor: str, reason: str) -> None:
    """Give back a charge the store never confirmed, now rather than at the policy's deadline."""
    if not apply_policy(services, payment_id, "reverse", note=f"{actor}: {reason}"):
        raise OperationRefused(f"payment {payment_id} is not an unconfirmed charge (only those can be reversed here; "
                               "a confirmed order is refunded from the store)")
    log.info("%s reversed the charge of payment %s: %s", actor, payment_id, reason)


def record_returned_by_hand(services: Services, payment_id: int, *, actor: str, note: str) -> None:
    """The operator returned what was left of a rejected order's charge at the processor itself."""
    with services.db.transaction() as session:
        payment = session.get(Payment, payment_id)
        charge = session.scalars(select(Charge).where(Charge.payment_id == payment_id)).first()
        if payment is None or payment.state != PaymentState.REJECTED or charge is None:
            raise OperationRefused(f"payment {payment_id} is not a rejected order with a charge")
        left = ledger.balance(session, ledger.lock_charge(session, charge.id)).remaining
        if left <= 0:
            raise OperationRefused(f"nothing is left to return on payment {payment_id}")
        entry = ledger.reserve(session, charge.id, ledger.REFUND, left, request_key="returned-by-hand")
        ledger.settle(session, entry.id, ledger.APPROVED, message=f"returned at the processor by {actor}: {note}")
        payment.credentials_sealed = None
        attention.clear(session, payment_id)
    log.info("%s recorded payment %s as returned by hand: %s", actor, payment_id, note)


def retry(services: Services, payment_id: int, *, actor: str, note: str) -> None:
    """Let background work try a flagged payment again now (after fixing what it reported)."""
    with services.db.transaction() as session:
        payment = session.get(Payment, payment_id)
        if payment is None or not payment.attention:
            raise OperationRefused(f"payment {payment_id} does not need attention")
        attention.clear(session, payment_id)
    log.info("%s asked for payment %s to be retried: %s", actor, payment_id, note)
