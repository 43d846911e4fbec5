"""The reversal of a charge the store rejected (or never confirmed): what is left of it goes back to
the shopper, exactly once, and the merchant credentials are kept until it has."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Charge, LedgerEntry, Payment, PaymentState, utcnow
from ..money import format_money
from ..processors.base import AdjustmentRefused, MerchantAuthenticationError, ProcessorUnavailable
from ..services import Services
from . import attention, ledger
from .adjustments import charge_ref, execute_adjustment, resume_void


def reverse_unfinished_rejections(services: Services) -> int:
    """Rejected orders whose charge is still standing (a crash after the store said no): reverse each
    on its own, so one that cannot be reversed stops no other."""
    now = utcnow()
    with services.db.transaction() as session:
        ids = session.scalars(
            select(Payment.id)
            .join(Charge, Charge.payment_id == Payment.id)
            .where(
                Payment.state == PaymentState.REJECTED,
                Payment.credentials_sealed.is_not(None),
                attention.due(now),
            )
        ).all()
    return sum(reverse_isolated(services, payment_id) for payment_id in ids)


def reverse_isolated(services: Services, payment_id: int) -> bool:
    """Reverse one rejected charge; a failure is recorded on its payment and stops nothing else."""
    return attention.isolated(services, payment_id, "reversing the rejected charge",
                              lambda: reverse_rejected_charge(services, payment_id))


def reverse_rejected_charge(services: Services, payment_id: int) -> None:
    """The store refused the order after we charged: give back what is left of the charge, exactly once.

    The merchant credentials are kept until the money is back: a reversal whose outcome is unknown
    waits for an operator, and if it did not happen the next round reverses again."""
    with services.db.transaction() as session:
        payment = session.get(Payment, payment_id)
        charge = session.scalars(select(Charge).where(Charge.payment_id == payment_id)).first()
        if payment is None or payment.state != PaymentState.REJECTED or charge is None:
            return
        if payment.credentials_sealed is None:
            return
        current = ledger.balance(session, ledger.lock_charge(session, charge.id))
        unsettled = ledger.unsettled_entry(session, charge.id)
        if unsettled is not None and ledger.is_in_flight(unsettled):
            return  # another process is moving money on it right now
        if unsettled is not None and not (unsettled.kind == ledger.VOID and unsettled.outcome == ledger.PENDING):
            _hold_for_operator(session, payment_id, unsettled, charge.currency)
            return
        if unsettled is None and current.remaining <= 0:
            _done(session, payment_id)
            return
        credentials = services.vault.open(payment.credentials_sealed)
    ref = charge_ref(charge)
    if unsettled is not None:  # a void whose process died mid-call; the next round sees its outcome
        resume_void(services, unsettled.id, ref, credentials)
        return
    try:
        kind = ledger.REFUND if current.refunded or services.processor.is_settled(ref, credentials) else ledger.VOID
        amount = current.remaining if kind == ledger.REFUND else charge.amount
        execute_adjustment(services, charge.id, ref, kind, amount, credentials, request_key="store-rejected")
    except (AdjustmentRefused, MerchantAuthenticationError) as exc:
        money = format_money(current.remaining, charge.currency)
        with services.db.transaction() as session:
            if _moved_meanwhile(session, payment_id, charge.id, current):
                return
            attention.flag(session, payment_id, f"the store rejected the order, but returning {money} was refused: "
                           f"{exc.merchant_message}; return it at the processor, then record it by hand")
        return
    except ProcessorUnavailable:
        with services.db.transaction() as session:
            unsettled = ledger.unsettled_entry(session, charge.id)
            if unsettled is None:
                raise  # nothing was reserved (the settlement check failed): retried after the backoff
            _hold_for_operator(session, payment_id, unsettled, charge.currency)
        return
    with services.db.transaction() as session:
        _done(session, payment_id)


def _moved_meanwhile(session: Session, payment_id: int, charge_id: int, read: ledger.Balance) -> bool:
    """Whether money moved on the charge since ``read`` (another reversal, the merchant): then the refusal
    says nothing about the money, and no operator is asked to return it. If it is all back, the reversal
    is done; if some is left or on its way, the next round sees it as it is."""
    now = ledger.balance(session, ledger.lock_charge(session, charge_id))
    unsettled = ledger.unsettled_entry(session, charge_id)
    if unsettled is None and now.remaining <= 0:
        _done(session, payment_id)
        return True
    return unsettled is not None or now != read


def _hold_for_operator(session: Session, payment_id: int, entry: LedgerEntry, currency: str) -> None:
    """A reversal of unknown outcome: the credentials stay, and an operator's "did not happen" reverses again."""
    money = format_money(entry.amount, currency)
    attention.flag(session, payment_id, f"the store rejected the order; the {entry.kind} of {money} "
                   f"(ledger entry {entry.id}) has an unknown outcome: check the processor and resolve it")


def _done(session: Session, payment_id: int) -> None:
    """The money is back: the merchant credentials are no longer needed, and nobody needs to look."""
    session.execute(update(Payment).where(Payment.id == payment_id).values(credentials_sealed=None))
    attention.clear(session, payment_id)
