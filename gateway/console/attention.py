"""The needs-attention queue: what money depends on and no automatic retry will settle.

``needs_attention`` is the one place the console (and the metrics) learn what is stuck; it is
built on today's primitives (dead notifications, unresolved ledger entries, rejected charges
still standing, charges stuck mid-flight), so it can later be pointed at a dedicated module.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..models import Notification, PaymentSession, SessionState, Transaction, utcnow
from ..notifications import outbox
from ..payments import ledger
from ..payments.charging import STALE_AFTER
from ..payments.completion import INTERRUPTED_AFTER
from ..services import Services

DEAD_NOTIFICATION, UNKNOWN_OUTCOME, STUCK_REVERSAL, STUCK_CHARGE = (
    "dead_notification", "unknown_outcome", "stuck_reversal", "stuck_charge")
KINDS = (DEAD_NOTIFICATION, UNKNOWN_OUTCOME, STUCK_REVERSAL, STUCK_CHARGE)


@dataclass(frozen=True)
class Item:
    kind: str
    ref: int  # notification id, ledger entry id, or payment session id, by kind
    session_id: int
    orderid: int
    store_key: str
    since: datetime
    summary: str


def needs_attention(services: Services) -> list[Item]:
    """Everything an operator must look at, oldest first."""
    items = [*_dead_notifications(services), *_unresolved_entries(services), *_stuck_payments(services)]
    return sorted(items, key=lambda item: item.since)


def _dead_notifications(services: Services) -> list[Item]:
    rows = outbox.by_state(services, "dead", limit=500)
    with services.db.transaction() as session:
        payments = {p.id: p for p in session.scalars(
            select(PaymentSession).where(PaymentSession.id.in_([row.session_id for row in rows])))}
    return [
        Item(DEAD_NOTIFICATION, row.id, row.session_id, payments[row.session_id].orderid,
             payments[row.session_id].store_key, row.created_at,
             f"the store was not told after {row.attempts} attempt(s): {row.last_error}")
        for row in rows
    ]


def _unresolved_entries(services: Services) -> list[Item]:
    settled_by_now = utcnow() - INTERRUPTED_AFTER
    with services.db.transaction() as session:
        entries = [e for e in ledger.unresolved(session)
                   if e.outcome == ledger.UNKNOWN or e.created_at < settled_by_now]
        return [
            Item(UNKNOWN_OUTCOME, entry.id, entry.transaction.session_id, entry.transaction.orderid,
                 entry.transaction.session.store_key, entry.created_at,
                 f"{entry.kind} of {entry.amount} {entry.transaction.currency} is {entry.outcome}: "
                 f"{entry.message or 'the process stopped mid-call'}")
            for entry in entries
        ]


def _stuck_payments(services: Services) -> list[Item]:
    """Rejected orders whose charge still stands (no void or refund in the ledger), and charges mid-flight."""
    now = utcnow()
    with services.db.transaction() as session:
        rejected = session.execute(
            select(PaymentSession, Transaction)
            .join(Transaction, Transaction.session_id == PaymentSession.id)
            .where(PaymentSession.state == SessionState.REJECTED.value)
        ).all()
        items = [
            Item(STUCK_REVERSAL, payment.id, payment.id, payment.orderid, payment.store_key, payment.updated_at,
                 f"the store rejected the order but {ledger.balance(session, transaction).remaining} "
                 f"{transaction.currency} is still charged")
            for payment, transaction in rejected
            if ledger.balance(session, transaction).remaining > 0
            and not any(e.outcome in (ledger.PENDING, ledger.UNKNOWN) for e in transaction.ledger)
        ]
        authorizing = session.scalars(select(PaymentSession).where(
            PaymentSession.state == SessionState.AUTHORIZING.value, PaymentSession.updated_at < now - STALE_AFTER))
        items += [
            Item(STUCK_CHARGE, payment.id, payment.id, payment.orderid, payment.store_key, payment.updated_at,
                 f"charge attempt {payment.attempt} has had no answer; the worker asks the processor every round")
            for payment in authorizing
        ]
    return items


def count_by_kind(services: Services) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for item in needs_attention(services):
        counts[item.kind] += 1
    return counts


def notification_session(services: Services, notification_id: int) -> int | None:
    with services.db.transaction() as session:
        return session.scalar(select(Notification.session_id).where(Notification.id == notification_id))
