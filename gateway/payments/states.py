"""The payments' state machines: every state change that money depends on is one guarded UPDATE
(see gateway.machine). The notification outbox's machine lives with the outbox."""
from __future__ import annotations

from ..machine import IllegalMove, Machine
from ..models import LedgerEntry, LedgerOutcome, Payment, PaymentState, PostOrderRequest, PostOrderState

__all__ = ["IllegalMove", "LEDGER", "PAYMENTS", "POST_ORDERS", "PaymentState"]

S, L, P = PaymentState, LedgerOutcome, PostOrderState


PAYMENTS = Machine(Payment, "state", {
    S.OPEN: frozenset({S.AUTHORIZING, S.CANCELLED}),
    # An attempt ends declined (open again), given up (failed), charged, or found absent at recovery.
    S.AUTHORIZING: frozenset({S.OPEN, S.FAILED, S.APPROVED}),
    S.APPROVED: frozenset({S.COMPLETED, S.REJECTED}),
})
LEDGER = Machine(LedgerEntry, "outcome", {
    L.PENDING: frozenset({L.APPROVED, L.DECLINED, L.UNKNOWN}),
    L.UNKNOWN: frozenset({L.APPROVED, L.DECLINED}),
})
POST_ORDERS = Machine(PostOrderRequest, "state", {
    P.PROCESSING: frozenset({P.PROCESSING, P.ANSWERED}),  # processing -> processing: a stale claim taken over
})
