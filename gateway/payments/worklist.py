"""Needs attention, the operator's worklist: what the gateway cannot finish by itself, listed and counted
(for the CLI, the console and the metrics). Read-only, so a command that only looks imports no action."""
from __future__ import annotations

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
    PostOrderRequest,
    PostOrderState,
    utcnow,
)
from ..money import format_money
from ..services import Services
from . import history, ledger


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
