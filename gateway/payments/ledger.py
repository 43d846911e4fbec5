"""Money movements on a charge, reserved before the processor is called so none can happen twice.

A void or refund is written to the ledger as ``pending`` in one short transaction that holds the
charge's row lock; only then is the processor called, and the entry settled afterwards. Pending and
unknown entries count against what is left, so two requests at the same moment can never together
move more than was captured, and no lock is held across a network call.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import LedgerEntry, Transaction, utcnow
from ..processors.base import AdjustmentRefused

SALE, VOID, REFUND = "sale", "void", "refund"
APPROVED, PENDING, DECLINED, UNKNOWN = "approved", "pending", "declined", "unknown"
HOLDS_MONEY = (APPROVED, PENDING, UNKNOWN)


@dataclass(frozen=True)
class Balance:
    captured: int
    refunded: int  # approved, pending or unknown refunds
    voided: bool  # an approved, pending or unknown void

    @property
    def remaining(self) -> int:
        return 0 if self.voided else self.captured - self.refunded


def lock_transaction(session: Session, transaction_id: int) -> Transaction:
    """Take the charge's row lock (a write, so SQLite's IMMEDIATE transaction holds it too)."""
    session.execute(
        update(Transaction).where(Transaction.id == transaction_id).values(lock_version=Transaction.lock_version + 1)
    )
    transaction = session.get(Transaction, transaction_id, populate_existing=True)
    assert transaction is not None
    return transaction


def balance(session: Session, transaction: Transaction) -> Balance:
    entries = session.scalars(
        select(LedgerEntry).where(LedgerEntry.transaction_id == transaction.id, LedgerEntry.outcome.in_(HOLDS_MONEY))
    ).all()
    return Balance(
        captured=transaction.amount,
        refunded=sum(entry.amount for entry in entries if entry.kind == REFUND),
        voided=any(entry.kind == VOID for entry in entries),
    )


def pending_entry(session: Session, transaction_id: int, kind: str) -> LedgerEntry | None:
    """A reservation not yet settled; one older than any processor call belongs to a process that died."""
    return session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.transaction_id == transaction_id, LedgerEntry.kind == kind, LedgerEntry.outcome == PENDING
        )
    ).first()


def reserve(session: Session, transaction_id: int, kind: str, amount: int, request_key: str | None = None) -> LedgerEntry:
    """Record a pending void or refund under the charge's lock, or refuse it with the reason."""
    transaction = lock_transaction(session, transaction_id)
    current = balance(session, transaction)
    if current.voided:
        raise AdjustmentRefused("the transaction has already been voided")
    if current.remaining <= 0:
        raise AdjustmentRefused("the transaction has already been fully refunded")
    if kind == VOID and current.refunded:
        raise AdjustmentRefused("the transaction has been partly refunded and can no longer be voided")
    if amount > current.remaining:
        raise AdjustmentRefused(
            f"a refund of {amount} exceeds the {current.remaining} left to refund of {current.captured} captured"
        )
    entry = LedgerEntry(
        transaction_id=transaction.id, kind=kind, amount=amount, outcome=PENDING, request_key=request_key, created_at=utcnow()
    )
    session.add(entry)
    session.flush()
    return entry


def settle(session: Session, entry_id: int, outcome: str, processor_ref: str | None = None, message: str = "") -> LedgerEntry:
    """Record what the processor did with a reserved entry and keep the charge's totals in step."""
    entry = session.get(LedgerEntry, entry_id)
    assert entry is not None and entry.outcome in (PENDING, UNKNOWN)
    transaction = lock_transaction(session, entry.transaction_id)
    entry.outcome = outcome
    entry.processor_ref = processor_ref
    entry.message = message[:1000]
    if outcome == APPROVED and entry.kind == VOID:
        transaction.voided = True
    if outcome == APPROVED and entry.kind == REFUND:
        transaction.amount_refunded += entry.amount
    return entry


def unresolved(session: Session) -> list[LedgerEntry]:
    """Voids and refunds whose outcome nobody knows: each holds its amount until an operator checks it."""
    return list(
        session.scalars(
            select(LedgerEntry).where(LedgerEntry.outcome.in_((PENDING, UNKNOWN))).order_by(LedgerEntry.id)
        )
    )


def resolve(session: Session, entry_id: int, happened: bool, note: str) -> LedgerEntry:
    """Record what the operator found at the processor for an unresolved entry."""
    return settle(session, entry_id, APPROVED if happened else DECLINED, message=f"resolved by operator: {note}")
