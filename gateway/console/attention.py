"""The needs-attention queue as the console shows it: the payments package's own queue
(``operations.needs_attention``, in its words), with each item tied to the payment and store it belongs to."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Charge, LedgerEntry, Notification, Payment, PostOrderRequest
from ..payments import operations
from ..services import Services

Kind = operations.AttentionKind
DEAD_NOTIFICATION, UNKNOWN_OUTCOME, PAYMENT, INTERRUPTED_REFUND = (
    Kind.DEAD_NOTIFICATION, Kind.UNKNOWN_OUTCOME, Kind.PAYMENT, Kind.INTERRUPTED_REFUND)


@dataclass(frozen=True)
class Item:
    kind: str  # an operations.AttentionKind value
    ref: int  # notification id, ledger entry id, payment session id or post-order request id, by kind
    payment_id: int | None
    orderid: int | None
    store_key: str
    since: datetime
    summary: str
    payment_state: str = ""


def needs_attention(services: Services) -> list[Item]:
    """Everything an operator must look at, oldest first."""
    queue = operations.needs_attention(services)
    with services.db.transaction() as session:
        return [_item(session, entry) for entry in queue]


def _item(session: Session, entry: operations.AttentionItem) -> Item:
    payment_id = _payment_of(session, entry.kind, entry.id)
    payment = session.get(Payment, payment_id) if payment_id is not None else None
    return Item(entry.kind.value, entry.id, payment_id, entry.orderid, payment.store_key if payment else "", entry.since, entry.reason,
                payment.state if payment else "")


def _payment_of(session: Session, kind: Kind, ref: int) -> int | None:
    if kind == PAYMENT:
        return ref
    if kind == DEAD_NOTIFICATION:
        return session.scalar(select(Notification.payment_id).where(Notification.id == ref))
    if kind == UNKNOWN_OUTCOME:
        return session.scalar(select(Charge.payment_id).join(LedgerEntry, LedgerEntry.charge_id == Charge.id)
                              .where(LedgerEntry.id == ref))
    # Order numbers are per store: the charge is the one this request reserved money on, if any.
    request = session.get(PostOrderRequest, ref)
    if request is None:
        return None
    return session.scalar(select(Charge.payment_id).join(LedgerEntry, LedgerEntry.charge_id == Charge.id)
                          .where(Charge.orderid == request.orderid, LedgerEntry.request_key == request.randomkey))


def notification_payment(services: Services, notification_id: int) -> int | None:
    with services.db.transaction() as session:
        return session.scalar(select(Notification.payment_id).where(Notification.id == notification_id))
