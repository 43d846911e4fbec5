"""Voids and refunds: the one path by which money leaves a charge."""
from __future__ import annotations

from ..models import Charge, LedgerEntry
from ..processors.base import ChargeRef, ProcessorError, ProcessorUnavailable
from ..services import Services
from ..vault import Credentials
from . import ledger


def execute_adjustment(
    services: Services,
    charge_id: int,
    ref: ChargeRef,
    kind: str,
    amount: int,
    credentials: Credentials,
    request_key: str | None,
) -> LedgerEntry:
    """Reserve, call the processor, settle; an unknown outcome keeps its reservation."""
    with services.db.transaction() as session:
        entry_id = ledger.reserve(session, charge_id, kind, amount, request_key).id
    try:
        if kind == ledger.VOID:
            adjustment = services.processor.void(ref, credentials)
        else:
            adjustment = services.processor.refund(ref, amount, credentials)
    except ProcessorError as exc:
        outcome = ledger.UNKNOWN if isinstance(exc, ProcessorUnavailable) else ledger.DECLINED
        with services.db.transaction() as session:
            ledger.settle(session, entry_id, outcome, message=exc.merchant_message)
        raise
    with services.db.transaction() as session:
        return ledger.settle(session, entry_id, ledger.APPROVED, adjustment.processor_transaction_id)


def resume_void(services: Services, entry_id: int, ref: ChargeRef, credentials: Credentials) -> None:
    """Finish a void whose process died mid-call. A void cannot move money twice, so it is safe to
    send again; if the processor refuses it now, the entry is left ``unknown`` for an operator.
    An unreachable processor raises: the caller's item is retried after its backoff."""
    try:
        adjustment = services.processor.void(ref, credentials)
    except ProcessorUnavailable:
        raise
    except ProcessorError as exc:
        with services.db.transaction() as session:
            ledger.settle(session, entry_id, ledger.UNKNOWN, message=f"void resumed after an interruption was refused: {exc.merchant_message}")
        return
    with services.db.transaction() as session:
        ledger.settle(session, entry_id, ledger.APPROVED, adjustment.processor_transaction_id)


def charge_ref(charge: Charge) -> ChargeRef:
    return ChargeRef(
        processor_transaction_id=charge.processor_transaction_id,
        amount=charge.amount,
        currency=charge.currency,
        card_last4=charge.card_last4,
        card_exp_month=charge.card_exp_month,
        card_exp_year=charge.card_exp_year,
        test_mode=charge.test_mode,
    )
