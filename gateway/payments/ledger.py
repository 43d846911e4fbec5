"""Money movements on a charge, reserved before the processor is called so none can happen twice.

A void or refund is written to the ledger as ``pending`` in one short transaction that holds the
charge's row lock; only then is the processor called, and the entry settled afterwards. Pending and
unknown entries count against what is left, so two requests at the same moment can never together
move more than was captured, and no lock is held across a network call.

``Charge.refunded`` is the sum of the charge's refund entries that hold money (pending,
unknown or approved). Every function here that changes that sum changes the column in the same
database charge, under the charge's row lock, so the database's CHECK (refunded <= amount)
guards the total even against a bug here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from ..models import Charge, LedgerEntry, LedgerKind, LedgerOutcome, one_of, utcnow
from ..money import format_money
from ..processors.base import AdjustmentRefused
from .states import LEDGER

SALE, VOID, REFUND = LedgerKind.SALE, LedgerKind.VOID, LedgerKind.REFUND
APPROVED, PENDING = LedgerOutcome.APPROVED, LedgerOutcome.PENDING
DECLINED, UNKNOWN = LedgerOutcome.DECLINED, LedgerOutcome.UNKNOWN
HOLDS_MONEY = (APPROVED, PENDING, UNKNOWN)
IN_FLIGHT_FOR = timedelta(minutes=2)  # longer than any processor call may take


class LedgerConflict(RuntimeError):
    """The entry is not in a state that allows this move (someone else settled it, or it is in flight)."""


@dataclass(frozen=True)
class Balance:
    captured: int
    refunded: int  # approved, pending or unknown refunds
    voided: bool  # an approved, pending or unknown void

    @property
    def remaining(self) -> int:
        return 0 if self.voided else self.captured - self.refunded


def lock_charge(session: Session, charge_id: int) -> Charge:
    """Take the charge's row lock (a write, so SQLite's IMMEDIATE transaction holds it too)."""
    session.execute(
        update(Charge).where(Charge.id == charge_id).values(lock_version=Charge.lock_version + 1)
    )
    charge = session.get(Charge, charge_id, populate_existing=True)
    assert charge is not None
    return charge


def balance(session: Session, charge: Charge) -> Balance:
    """The refunds are the charge's kept total, read from the database in this session's transaction
    (``transaction`` may come from an earlier one); whether it is voided is derived from its entries."""
    refunded, voided = session.execute(
        select(
            Charge.refunded,
            exists().where(LedgerEntry.charge_id == Charge.id, LedgerEntry.kind == VOID,
                           one_of(LedgerEntry.outcome, HOLDS_MONEY)),
        ).where(Charge.id == charge.id)
    ).one()
    return Balance(captured=charge.amount, refunded=refunded, voided=bool(voided))


def _hold(session: Session, charge: Charge, amount: int) -> None:
    """Add ``amount`` (negative to release it) to the refunds the charge holds; the caller has its lock.
    Flushed at once, so the database's CHECK refuses a wrong total here rather than at commit."""
    charge.refunded += amount
    session.flush()


def unsettled_entry(session: Session, charge_id: int) -> LedgerEntry | None:
    """The oldest void or refund on the charge still pending or unknown (it holds its amount back)."""
    return session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.charge_id == charge_id, one_of(LedgerEntry.outcome, (PENDING, UNKNOWN)))
        .order_by(LedgerEntry.id)
    ).first()


def reserve(session: Session, charge_id: int, kind: LedgerKind | str, amount: int, request_key: str | None = None) -> LedgerEntry:
    """Record a pending void or refund under the charge's lock, or refuse it with the reason."""
    charge = lock_charge(session, charge_id)
    current = balance(session, charge)
    if current.voided:
        raise AdjustmentRefused("the transaction has already been voided")
    if current.remaining <= 0:
        raise AdjustmentRefused("the transaction has already been fully refunded")
    if kind == VOID and current.refunded:
        raise AdjustmentRefused("the transaction has been partly refunded and can no longer be voided")
    if amount > current.remaining:
        currency = charge.currency
        raise AdjustmentRefused(
            f"a refund of {format_money(amount, currency)} exceeds the {format_money(current.remaining, currency)}"
            f" left to refund of {format_money(current.captured, currency)} captured"
        )
    entry = LedgerEntry(
        charge_id=charge.id, kind=kind, amount=amount, outcome=PENDING, request_key=request_key, created_at=utcnow()
    )
    session.add(entry)
    session.flush()
    if kind == REFUND:
        _hold(session, charge, amount)
    return entry


def settle(session: Session, entry_id: int, outcome: str, processor_ref: str | None = None, message: str = "") -> LedgerEntry:
    """Record what the processor did with a reserved entry and keep the charge's refunded total in step.

    A compare-and-set from pending/unknown: if an operator already resolved the entry, the
    processor's answer is not lost; when it contradicts the resolution, the entry needs attention
    (and the total stays as the operator's resolution left it: only the winning move changes it)."""
    entry = session.get(LedgerEntry, entry_id)
    assert entry is not None
    charge = lock_charge(session, entry.charge_id)
    target = LedgerOutcome(outcome)
    sources = (LedgerOutcome.PENDING,) if target is LedgerOutcome.UNKNOWN else (LedgerOutcome.PENDING, LedgerOutcome.UNKNOWN)
    won = LEDGER.move(session, entry_id, sources, target,
                      processor_ref=processor_ref, message=message[:1000])
    session.refresh(entry)
    if not won:
        if entry.outcome != outcome:
            entry.attention = (f"the processor answered {outcome} ({processor_ref or message}) after this entry "
                               f"was recorded {entry.outcome}: check the processor and correct the books")[:2000]
        return entry
    if target is LedgerOutcome.DECLINED and entry.kind == REFUND:
        _hold(session, charge, -entry.amount)  # pending or unknown held it; declined does not
    return entry


def mark_unknown(session: Session, entry_id: int, message: str) -> bool:
    """A reservation whose process died, or whose answer could not be read: hold it for an operator."""
    return LEDGER.move(session, entry_id, LedgerOutcome.PENDING, LedgerOutcome.UNKNOWN, message=message[:1000])


def is_in_flight(entry: LedgerEntry) -> bool:
    return entry.outcome == PENDING and entry.created_at > utcnow() - IN_FLIGHT_FOR


def unresolved(session: Session) -> list[LedgerEntry]:
    """Voids and refunds whose outcome nobody knows: each holds its amount until an operator checks it."""
    return list(
        session.scalars(
            select(LedgerEntry).where(one_of(LedgerEntry.outcome, (PENDING, UNKNOWN))).order_by(LedgerEntry.id)
        )
    )


def resolve(session: Session, entry_id: int, happened: bool, note: str) -> LedgerEntry:
    """Record what the operator found at the processor, unless the entry's own call may still be in flight."""
    entry = session.get(LedgerEntry, entry_id)
    if entry is None:
        raise LedgerConflict(f"ledger entry {entry_id} does not exist")
    lock_charge(session, entry.charge_id)  # the same lock order as settle: charge, then entry
    session.refresh(entry)
    if entry.outcome not in (PENDING, UNKNOWN):
        raise LedgerConflict(f"ledger entry {entry_id} is not unresolved")
    if is_in_flight(entry):
        raise LedgerConflict(f"ledger entry {entry_id} is still in flight at the processor; check again in a few minutes")
    if entry.outcome == PENDING and not mark_unknown(session, entry_id, entry.message):
        raise LedgerConflict(f"ledger entry {entry_id} was settled meanwhile")
    settled = settle(session, entry_id, APPROVED if happened else DECLINED, message=f"resolved by operator: {note}")
    settled.attention = ""
    return settled
