"""Exchange 4, the Gateway Post-Order URL: a merchant's Void/Refund, exactly once.

Retries carry the same randomkey; the first answer is stored and given again, and no money moves.
Money itself moves only through :func:`adjustments.execute_adjustment`, whose ledger reservation
keeps concurrent requests from together exceeding what was captured.

A request whose process died after claiming its randomkey is taken over by the next retry once the
claim is older than any processor call: the ledger entry reserved under that randomkey tells whether
money moved (answer approved), did not (carry on as new) or nobody knows (say so, hold for an operator).

The answer is rendered by the edge (``render``: the wire's signed RefundResponse); the domain keeps
it as it is, so a retry gets the very same answer.
"""
from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError

from ..errorcodes import ErrorCode
from ..models import Charge, LedgerEntry, PostOrderRequest, PostOrderState, utcnow
from ..money import format_money
from ..processors.base import AdjustmentRefused, MerchantAuthenticationError, ProcessorError, ProcessorUnavailable
from ..services import Services
from ..vault import Credentials
from . import ledger, replay
from .adjustments import charge_ref, execute_adjustment
from .commands import RefundCommand, RefundOutcome, RenderedAnswer
from .errors import Refused
from .states import POST_ORDERS

log = logging.getLogger(__name__)
Render = Callable[[RefundOutcome], RenderedAnswer]
STILL_PROCESSING = "this request is still being processed; try again in a moment"


def apply(services: Services, command: RefundCommand, render: Render) -> RenderedAnswer:
    """Void or refund as the command asks, once; every failure is an outcome with its reason."""
    earlier = _remember(services, command, render)
    if earlier is not None:
        return earlier
    try:
        outcome = _void_or_refund(services, command)
    except Refused as exc:
        outcome = RefundOutcome.refused(exc.code, exc.message)
    answer = render(outcome)
    _store(services, command, answer)
    return answer


def _key(command: RefundCommand) -> tuple[ColumnElement[bool], ...]:
    return (PostOrderRequest.orderid == command.orderid, PostOrderRequest.randomkey == command.randomkey)


def _store(services: Services, command: RefundCommand, answer: RenderedAnswer) -> None:
    with services.db.transaction() as session:
        record = session.scalars(select(PostOrderRequest).where(*_key(command))).one()
        POST_ORDERS.move(session, record.id, PostOrderState.PROCESSING, PostOrderState.ANSWERED, response=answer)


def _remember(services: Services, command: RefundCommand, render: Render) -> RenderedAnswer | None:
    """Claim this randomkey, or return the answer already given for it."""
    try:
        with services.db.transaction() as session:
            if replay.first_use(session, replay.POST_ORDER, command.randomkey, command.fingerprint):
                session.add(PostOrderRequest(orderid=command.orderid, randomkey=command.randomkey))
                return None
            record = session.scalars(select(PostOrderRequest).where(*_key(command))).one()
    except IntegrityError:
        return _remember(services, command, render)
    if record.state == PostOrderState.ANSWERED and record.response is not None:
        return record.response
    claimed_at = record.claimed_at or record.created_at
    if claimed_at > utcnow() - ledger.IN_FLIGHT_FOR:
        raise Refused(ErrorCode.REFUND_FAILED, STILL_PROCESSING, retry_safe=True)
    answer = _answer_from_ledger(services, command, render)
    if answer is None and not _take_over(services, record):
        raise Refused(ErrorCode.REFUND_FAILED, STILL_PROCESSING, retry_safe=True)
    return answer


def _take_over(services: Services, record: PostOrderRequest) -> bool:
    """Claim a request whose first process died and moved no money; of two retries, one wins."""
    with services.db.transaction() as session:
        return POST_ORDERS.move(session, record.id, PostOrderState.PROCESSING, PostOrderState.PROCESSING,
                                PostOrderRequest.claimed_at == record.claimed_at, claimed_at=utcnow())


def _answer_from_ledger(services: Services, command: RefundCommand, render: Render) -> RenderedAnswer | None:
    """What the crashed attempt did, from the entry it reserved under this randomkey; None if it moved nothing."""
    with services.db.transaction() as session:
        entry = session.scalars(
            select(LedgerEntry)
            .join(Charge, Charge.id == LedgerEntry.charge_id)
            .where(Charge.orderid == command.orderid, LedgerEntry.request_key == command.randomkey)
            .order_by(LedgerEntry.id.desc())
        ).first()
        if entry is None or entry.outcome == ledger.DECLINED:
            return None
        if entry.outcome == ledger.PENDING:
            ledger.mark_unknown(session, entry.id, "its process died mid-call: check the processor and resolve it")
    if entry.outcome != ledger.APPROVED:
        # Not stored: once an operator has resolved the entry, the next retry is answered from it.
        return render(RefundOutcome.refused(
            ErrorCode.PROCESSOR_UNAVAILABLE,
            f"the {entry.kind} of this request was interrupted and its outcome is unknown; "
            f"it is held for an operator (ledger entry {entry.id}), do not retry it with a new randomkey"))
    answer = render(_approved(entry))
    _store(services, command, answer)
    return answer


def _void_or_refund(services: Services, command: RefundCommand) -> RefundOutcome:
    charge = _find_charge(services, command)
    if command.currency and command.currency.upper() != charge.currency:
        raise Refused(
            ErrorCode.BAD_REQUEST, f"currency {command.currency} does not match the transaction's {charge.currency}"
        )
    ref = charge_ref(charge)
    asked = command.asked.value
    try:
        kind = _choose_kind(services, charge, command.amount, command.credentials)
        entry = execute_adjustment(services, charge.id, ref, kind, command.amount, command.credentials,
                                   request_key=command.randomkey)
    except AdjustmentRefused as exc:
        raise Refused(ErrorCode.REFUND_FAILED, f"{asked} refused: {exc.merchant_message}") from exc
    except MerchantAuthenticationError as exc:
        raise Refused(ErrorCode.MERCHANT_AUTHENTICATION, exc.merchant_message) from exc
    except ProcessorUnavailable as exc:
        raise Refused(
            ErrorCode.PROCESSOR_UNAVAILABLE,
            f"the processor did not confirm the {asked}; it is held as pending, check before retrying: {exc.merchant_message}",
        ) from exc
    except ProcessorError as exc:
        raise Refused(ErrorCode.REFUND_FAILED, exc.merchant_message) from exc
    log.info("order %s: %s of %s approved (%s)", command.orderid, entry.kind, entry.amount, entry.processor_ref)
    return _approved(entry)


def _approved(entry: LedgerEntry) -> RefundOutcome:
    return RefundOutcome(approved=True, processor_transaction_id=entry.processor_ref or "")


def _find_charge(services: Services, command: RefundCommand) -> Charge:
    """The charge, if it belongs to this order and these credentials; the refusal says no more than that."""
    with services.db.transaction() as session:
        candidates = session.scalars(
            select(Charge).where(
                Charge.processor_transaction_id == command.processor_transaction_id,
                Charge.orderid == command.orderid,
                Charge.invoice == command.invoice,
            )
        ).all()
    for charge in candidates:
        if services.vault.matches(command.credentials, charge.credentials_fingerprint):
            return charge
    raise Refused(
        ErrorCode.ORDER_NOT_FOUND,
        f"no transaction {command.processor_transaction_id} for order {command.orderid} ({command.invoice}) "
        "with these credentials",
    )


def _choose_kind(services: Services, charge: Charge, amount: int, credentials: Credentials) -> str:
    """Void while the whole, untouched charge has not settled; refund once it has.

    No processor refunds a charge before it settles, so a partial refund of an unsettled one is refused
    here, before anything is reserved or sent, with the reason and when to ask again."""
    with services.db.transaction() as session:
        current = ledger.balance(session, charge)
    if current.refunded or current.voided:
        return ledger.REFUND  # an earlier refund means it settled; after a void the ledger refuses it
    if _is_settled(services, charge, credentials):
        return ledger.REFUND
    if amount < charge.amount:
        raise Refused(ErrorCode.REFUND_FAILED, _not_settled(charge))
    return ledger.VOID if amount == charge.amount else ledger.REFUND  # more than captured: the ledger refuses it


def _is_settled(services: Services, charge: Charge, credentials: Credentials) -> bool:
    """The processor's word on settlement; without it nothing is reserved, and the answer says so."""
    try:
        return services.processor.is_settled(charge_ref(charge), credentials)
    except ProcessorUnavailable as exc:
        raise Refused(ErrorCode.PROCESSOR_UNAVAILABLE,
                      "the processor could not say whether the transaction has settled, so nothing was done; "
                      f"try again in a few minutes: {exc.merchant_message}") from exc


def _not_settled(charge: Charge) -> str:
    whole = format_money(charge.amount, charge.currency)
    return (f"the transaction has not settled yet, so it cannot be partly refunded: until it settles, only a void of "
            f"the whole {whole} is possible; send the refund again after it settles, usually within 24 hours")
