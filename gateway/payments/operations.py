"""Operator actions, for the `gateway` CLI and the web console alike.

Each takes the acting operator and a note or reason, goes through the same guarded moves as the
gateway itself (so an action can never race a worker into moving money twice), and raises
:class:`OperationRefused` with a sentence the operator can act on when it cannot be done.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any, Iterator

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..models import (
    Charge,
    LedgerEntry,
    Notification,
    NotificationState,
    Payment,
    PaymentState,
    PostOrderRequest,
    PostOrderState,
    utcnow,
)
from ..money import format_money
from ..processors.base import ProcessorCharge
from ..services import Services
from . import attention, history, ledger
from .attempts import leave_authorizing, record_charge
from .completion import deliver_if_claimed
from .recovery import STALE_AFTER
from .unconfirmed import apply_policy

log = logging.getLogger(__name__)


class OperationRefused(Exception):
    """The action does not apply to the item as it is now; the message says why."""


class AttentionKind(str, Enum):
    """What needs an operator; the same words in the CLI, the console and the metrics."""

    PAYMENT = "payment"  # a payment the gateway cannot finish (its reason says why)
    UNKNOWN_OUTCOME = "unknown_outcome"  # a void or refund nobody knows happened, or a contradicted resolution
    INTERRUPTED_REFUND = "interrupted_refund"  # a Post-Order request whose process died
    DEAD_NOTIFICATION = "dead_notification"  # the store was never told


@dataclass(frozen=True)
class AttentionItem:
    kind: AttentionKind
    id: int  # the payment, ledger entry, post-order request or notification, by kind
    orderid: int | None
    reason: str
    since: datetime
    payment_id: int | None = None  # the payment it belongs to (None: a request that never reached a charge)
    store_key: str = ""
    payment_state: str = ""


def needs_attention(services: Services) -> list[AttentionItem]:
    """Everything the gateway cannot finish by itself, oldest first, each with its reason and payment:
    one query per kind, each over a partial index holding only such rows (migration 0012)."""
    flagged = _flagged(utcnow() - ledger.IN_FLIGHT_FOR)
    with services.db.transaction() as session:
        items = [*_flagged_payments(session, flagged[AttentionKind.PAYMENT]),
                 *_unknown_outcomes(session, flagged[AttentionKind.UNKNOWN_OUTCOME]),
                 *_interrupted_refunds(session, flagged[AttentionKind.INTERRUPTED_REFUND]),
                 *_dead_notifications(session, flagged[AttentionKind.DEAD_NOTIFICATION])]
        payments = {row.id: row for row in session.execute(
            select(Payment.id, Payment.store_key, Payment.state)
            .where(Payment.id.in_({item.payment_id for item in items if item.payment_id is not None})))}
    return sorted((_with_payment(item, payments.get(item.payment_id)) for item in items), key=lambda item: item.since)


def _flagged(stale: datetime) -> dict[AttentionKind, Select[Any]]:
    """Each kind's rows, as the list reads them and the count counts them (the same conditions)."""
    return {
        AttentionKind.PAYMENT: select(Payment).where(Payment.attention != ""),
        AttentionKind.UNKNOWN_OUTCOME: select(LedgerEntry).where(
            (LedgerEntry.outcome == ledger.UNKNOWN) | (LedgerEntry.attention != "")
            | ((LedgerEntry.outcome == ledger.PENDING) & (LedgerEntry.created_at < stale))),
        AttentionKind.INTERRUPTED_REFUND: select(PostOrderRequest).where(
            PostOrderRequest.state == PostOrderState.PROCESSING, PostOrderRequest.claimed_at < stale),
        AttentionKind.DEAD_NOTIFICATION: select(Notification).join(Payment, Payment.id == Notification.payment_id)
        .where(Notification.state == NotificationState.DEAD, Payment.attention == ""),
    }


def _flagged_payments(session: Session, payments: Select[Any]) -> Iterator[AttentionItem]:
    for payment in session.scalars(payments):
        yield AttentionItem(AttentionKind.PAYMENT, payment.id, payment.orderid, payment.attention,
                            payment.attention_at or payment.updated_at, payment.id)


def _unknown_outcomes(session: Session, entries_flagged: Select[Any]) -> Iterator[AttentionItem]:
    entries = session.execute(entries_flagged.add_columns(Charge.orderid, Charge.currency, Charge.payment_id)
                              .join(Charge, Charge.id == LedgerEntry.charge_id)).all()
    for entry, orderid, currency, payment_id in entries:
        reason = entry.attention or (f"{entry.kind} of {format_money(entry.amount, currency)}: outcome unknown "
                                     f"({entry.message or 'interrupted mid-call'}); check the processor and resolve it")
        yield AttentionItem(AttentionKind.UNKNOWN_OUTCOME, entry.id, orderid, reason, entry.created_at, payment_id)


def _interrupted_refunds(session: Session, requests: Select[Any]) -> Iterator[AttentionItem]:
    """With the payment each request reserved money on, if it got that far, in the same query."""
    rows = session.execute(requests.add_columns(history.payment_of_post_order_request())).all()
    for request, payment_id in rows:
        yield AttentionItem(AttentionKind.INTERRUPTED_REFUND, request.id, request.orderid,
                            f"refund request {request.randomkey!r} was interrupted; the store's retry finishes it",
                            request.claimed_at or request.created_at, payment_id)


def _dead_notifications(session: Session, notifications: Select[Any]) -> Iterator[AttentionItem]:
    rows = session.execute(notifications.add_columns(Payment.orderid)).all()
    for notification, orderid in rows:
        yield AttentionItem(AttentionKind.DEAD_NOTIFICATION, notification.id, orderid,
                            f"the store was never told ({notification.last_error}); requeue it",
                            notification.next_attempt_at, notification.payment_id)


def _with_payment(item: AttentionItem, payment: Any) -> AttentionItem:
    return item if payment is None else replace(item, store_key=payment.store_key, payment_state=str(payment.state))


def attention_count(services: Services) -> int:
    return sum(count_by_kind(services).values())


def count_by_kind(services: Services) -> dict[str, int]:
    """How many items of each kind need an operator (every kind, zero included: for the metrics), counted
    in the database over the same partial indexes: a scrape reads a few index pages, not the history."""
    flagged = _flagged(utcnow() - ledger.IN_FLIGHT_FOR)
    with services.db.transaction() as session:
        return {kind.value: session.scalar(flagged[kind].with_only_columns(func.count(), maintain_column_froms=True)) or 0
                for kind in AttentionKind}


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
        notification = record_charge(services, payment_id, attempt, charge)
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
