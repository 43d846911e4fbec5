"""Exchange 4, the Gateway Post-Order URL: a merchant's Void/Refund, exactly once.

Retries carry the same randomkey; the first answer is stored and given again, and no money moves.
Money itself moves only through :func:`adjustments.execute_adjustment`, whose ledger reservation
keeps concurrent requests from together exceeding what was captured.

A request whose process died after claiming its randomkey is taken over by the next retry once the
claim is older than any processor call: the ledger entry reserved under that randomkey tells whether
money moved (answer approved), did not (carry on as new) or nobody knows (say so, hold for an operator).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..models import LedgerEntry, PostOrderRequest, PostOrderState, Transaction, utcnow
from ..processors.base import AdjustmentRefused, MerchantAuthenticationError, ProcessorError, ProcessorUnavailable
from ..protocol.errors import ErrorCode, ProtocolError
from ..protocol.messages import refund_response
from ..protocol.requests import SignedRequest, load_signed
from ..protocol.schemas import RefundRequestSchema
from ..services import Services
from ..vault import Credentials
from . import ledger, replay
from .adjustments import charge_ref, execute_adjustment
from .states import POST_ORDERS

log = logging.getLogger(__name__)
SIGNED_FIELDS = ("orderid", "invoice", "transactionid")
ECHOED = ("orderid", "invoice")  # what a RefundResponse is signed over, besides its own transactionid
KINDS = ("void", "refund")
REFUND_REQUEST = RefundRequestSchema()


def read_refund_request(services: Services, body: bytes) -> SignedRequest:
    """The protocol edge: a validated, authenticated RefundRequest, or a ProtocolError to sign."""
    request = load_signed(
        body, REFUND_REQUEST, services.settings.private_key, SIGNED_FIELDS, "RefundRequest", echo=ECHOED
    )
    if request.data["type"].strip().lower() not in KINDS:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"type must be 'void' or 'refund', got {request.data['type']!r}", request.echo(ECHOED)
        )
    return request


def handle_refund_request(services: Services, request: SignedRequest) -> dict[str, Any]:
    """Answer a RefundRequest with a signed RefundResponse; every failure is approved=0 with a reason."""
    earlier = _remember(services, request)
    if earlier is not None:
        return earlier
    try:
        answer = _void_or_refund(services, request)
    except ProtocolError as exc:
        answer = error_response(services, request.echo(ECHOED), exc)
    with services.db.transaction() as session:
        record = session.scalars(select(PostOrderRequest).where(*_key(request))).one()
        POST_ORDERS.move(session, record.id, PostOrderState.PROCESSING, PostOrderState.ANSWERED, response=answer)
    return answer


def error_response(services: Services, echo: Mapping[str, str], error: ProtocolError) -> dict[str, Any]:
    """approved=0, signed over the request's orderid and invoice only where they validated."""
    return refund_response(
        services.settings.private_key,
        orderid=echo.get("orderid", ""),
        invoice=echo.get("invoice", ""),
        approved=False,
        transactionid="",
        errorcode=error.code.value,
        errormessage=error.message,
    )


def _key(request: SignedRequest) -> tuple[Any, ...]:
    return (PostOrderRequest.orderid == request.data["orderid"], PostOrderRequest.randomkey == request.data["randomkey"])


def _remember(services: Services, request: SignedRequest) -> dict[str, Any] | None:
    """Claim this randomkey, or return the answer already given for it."""
    digest = request.digest(services.settings.secret_key)
    try:
        with services.db.transaction() as session:
            if replay.first_use(session, replay.POST_ORDER, request.data["randomkey"], digest):
                session.add(PostOrderRequest(orderid=request.data["orderid"], randomkey=request.data["randomkey"]))
                return None
            record = session.scalars(select(PostOrderRequest).where(*_key(request))).one()
    except IntegrityError:
        return _remember(services, request)
    if record.state == PostOrderState.ANSWERED.value and record.response is not None:
        return record.response
    claimed_at = record.claimed_at or record.created_at
    if claimed_at > utcnow() - ledger.IN_FLIGHT_FOR:
        raise ProtocolError(ErrorCode.REFUND_FAILED, "this request is still being processed; try again in a moment")
    answer = _answer_from_ledger(services, request)
    if answer is None and not _take_over(services, record):
        raise ProtocolError(ErrorCode.REFUND_FAILED, "this request is still being processed; try again in a moment")
    return answer


def _take_over(services: Services, record: PostOrderRequest) -> bool:
    """Claim a request whose first process died and moved no money; of two retries, one wins."""
    with services.db.transaction() as session:
        return POST_ORDERS.move(session, record.id, PostOrderState.PROCESSING, PostOrderState.PROCESSING,
                                PostOrderRequest.claimed_at == record.claimed_at, claimed_at=utcnow())


def _answer_from_ledger(services: Services, request: SignedRequest) -> dict[str, Any] | None:
    """What the crashed attempt did, from the entry it reserved under this randomkey; None if it moved nothing."""
    with services.db.transaction() as session:
        entry = session.scalars(
            select(LedgerEntry)
            .join(Transaction, Transaction.id == LedgerEntry.transaction_id)
            .where(Transaction.orderid == request.data["orderid"], LedgerEntry.request_key == request.data["randomkey"])
            .order_by(LedgerEntry.id.desc())
        ).first()
        if entry is None or entry.outcome == ledger.DECLINED:
            return None
        if entry.outcome == ledger.PENDING:
            ledger.mark_unknown(session, entry.id, "its process died mid-call: check the processor and resolve it")
    if entry.outcome != ledger.APPROVED:
        # Not stored: once an operator has resolved the entry, the next retry is answered from it.
        return error_response(services, request.echo(ECHOED), ProtocolError(
            ErrorCode.PROCESSOR_UNAVAILABLE,
            f"the {entry.kind} of this request was interrupted and its outcome is unknown; "
            f"it is held for an operator (ledger entry {entry.id}), do not retry it with a new randomkey"))
    answer = _approved(services, request, entry)
    with services.db.transaction() as session:
        record = session.scalars(select(PostOrderRequest).where(*_key(request))).one()
        POST_ORDERS.move(session, record.id, PostOrderState.PROCESSING, PostOrderState.ANSWERED, response=answer)
    return answer


def _void_or_refund(services: Services, request: SignedRequest) -> dict[str, Any]:
    data = request.data
    credentials = Credentials(data["username"], data["password"])
    transaction = _find_transaction(services, data, credentials)
    if data["currency"] and data["currency"].upper() != transaction.currency:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"currency {data['currency']} does not match the transaction's {transaction.currency}"
        )
    ref = charge_ref(transaction)
    amount = data["amounttotal"]
    try:
        kind = _choose_kind(services, transaction, amount, credentials)
        entry = execute_adjustment(services, transaction.id, ref, kind, amount, credentials, request_key=data["randomkey"])
    except AdjustmentRefused as exc:
        raise ProtocolError(ErrorCode.REFUND_FAILED, f"{data['type']} refused: {exc.merchant_message}") from exc
    except MerchantAuthenticationError as exc:
        raise ProtocolError(ErrorCode.MERCHANT_AUTHENTICATION, exc.merchant_message) from exc
    except ProcessorUnavailable as exc:
        raise ProtocolError(
            ErrorCode.PROCESSOR_UNAVAILABLE,
            f"the processor did not confirm the {data['type']}; it is held as pending, check before retrying: {exc.merchant_message}",
        ) from exc
    except ProcessorError as exc:
        raise ProtocolError(ErrorCode.REFUND_FAILED, exc.merchant_message) from exc
    log.info("order %s: %s of %s approved (%s)", data["orderid"], entry.kind, entry.amount, entry.processor_ref)
    return _approved(services, request, entry)


def _approved(services: Services, request: SignedRequest, entry: LedgerEntry) -> dict[str, Any]:
    return refund_response(
        services.settings.private_key,
        orderid=request.raw["orderid"],
        invoice=request.data["invoice"],
        approved=True,
        transactionid=entry.processor_ref or "",
        errormessage="",
    )


def _find_transaction(services: Services, data: dict[str, Any], credentials: Credentials) -> Transaction:
    """The charge, if it belongs to this order and these credentials; the refusal says no more than that."""
    with services.db.transaction() as session:
        candidates = session.scalars(
            select(Transaction).where(
                Transaction.processor_txn_id == data["transactionid"],
                Transaction.orderid == data["orderid"],
                Transaction.invoice == data["invoice"],
            )
        ).all()
    for transaction in candidates:
        if services.vault.matches(credentials, transaction.credentials_fingerprint):
            return transaction
    raise ProtocolError(
        ErrorCode.ORDER_NOT_FOUND,
        f"no transaction {data['transactionid']} for order {data['orderid']} ({data['invoice']}) with these credentials",
    )


def _choose_kind(services: Services, transaction: Transaction, amount: int, credentials: Credentials) -> str:
    """Void while the whole, untouched charge has not settled; refund otherwise."""
    with services.db.transaction() as session:
        current = ledger.balance(session, transaction)
    if amount != transaction.amount or current.refunded or current.voided:
        return ledger.REFUND
    settled = services.processor.is_settled(charge_ref(transaction), credentials)
    return ledger.REFUND if settled else ledger.VOID
