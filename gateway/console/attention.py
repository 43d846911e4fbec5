"""The needs-attention queue as the console shows it: the payments package's own queue
(``worklist.needs_attention``, in its words, each item with its payment and store)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..payments import history, worklist
from ..services import Services

Kind = worklist.AttentionKind
DEAD_NOTIFICATION, UNKNOWN_OUTCOME, PAYMENT, INTERRUPTED_REFUND = (
    Kind.DEAD_NOTIFICATION, Kind.UNKNOWN_OUTCOME, Kind.PAYMENT, Kind.INTERRUPTED_REFUND)


@dataclass(frozen=True)
class Item:
    kind: str  # a worklist.AttentionKind value
    ref: int  # notification id, ledger entry id, payment id or post-order request id, by kind
    payment_id: int | None
    orderid: int | None
    store_key: str
    since: datetime
    summary: str
    payment_state: str = ""


def needs_attention(services: Services) -> list[Item]:
    """Everything an operator must look at, oldest first."""
    return [Item(entry.kind.value, entry.id, entry.payment_id, entry.orderid, entry.store_key, entry.since, entry.reason,
                 entry.payment_state) for entry in worklist.needs_attention(services)]


def notification_payment(services: Services, notification_id: int) -> int | None:
    return history.payment_of_notification(services, notification_id)
