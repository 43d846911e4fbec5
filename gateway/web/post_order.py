"""Exchange 4, the Gateway Post-Order URL: RefundRequest in, signed RefundResponse out.

The protocol stays here: the body is parsed, validated and its signature checked, the domain gets a
typed :class:`RefundCommand`, and every outcome is signed over the request's orderid and invoice.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Blueprint, Response

from ..errorcodes import ErrorCode
from ..payments import post_order as payments_post_order
from ..payments.commands import Asked, RefundCommand, RefundOutcome
from ..payments.errors import Refused
from ..protocol.errors import ProtocolError
from ..protocol.messages import refund_response
from ..protocol.requests import SignedRequest, load_signed
from ..protocol.schemas import RefundRequestSchema
from ..vault import Credentials
from . import read_body, services, signed_json

bp = Blueprint("post_order", __name__)
log = logging.getLogger(__name__)
REFUND_REQUEST = RefundRequestSchema()
SIGNED_FIELDS = ("orderid", "invoice", "transactionid")
ECHOED = ("orderid", "invoice")  # what a RefundResponse is signed over, besides its own transactionid


@bp.post("/post-order")
def post_order() -> Response:
    try:
        refund_request = read_refund_request(read_body())
    except ProtocolError as exc:
        log.info("post-order refused: %s %s", exc.code.value, exc.message)
        return signed_json(error_response(exc.echo, exc.code, exc.message))
    echo = refund_request.echo(ECHOED)
    try:
        command = _command(refund_request)
        return signed_json(payments_post_order.apply(services(), command, lambda outcome: render(refund_request, outcome)))
    except Refused as exc:
        log.info("post-order refused: %s %s", exc.code.value, exc.message)
        return signed_json(error_response(echo, exc.code, exc.message))
    except Exception:  # noqa: BLE001 - the platform must always get a signed answer
        log.exception("post-order failed")
        return signed_json(error_response(echo, ErrorCode.REFUND_FAILED,
                                          "the gateway could not process this request; contact support before retrying"))


def read_refund_request(body: bytes) -> SignedRequest:
    """A validated, authenticated RefundRequest, or a ProtocolError to sign."""
    request = load_signed(
        body, REFUND_REQUEST, services().settings.private_keys, SIGNED_FIELDS, "RefundRequest", echo=ECHOED
    )
    if request.data["type"].strip().lower() not in {asked.value for asked in Asked}:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"type must be 'void' or 'refund', got {request.data['type']!r}", request.echo(ECHOED)
        )
    return request


def _command(request: SignedRequest) -> RefundCommand:
    data = request.data
    return RefundCommand(
        orderid=data["orderid"],
        invoice=data["invoice"],
        processor_transaction_id=data["transactionid"],
        randomkey=data["randomkey"],
        fingerprint=request.digest(services().settings.secret_key),
        asked=Asked(data["type"].strip().lower()),
        amount=data["amounttotal"],
        currency=data["currency"],
        credentials=Credentials(data["username"], data["password"]),
    )


def render(request: SignedRequest, outcome: RefundOutcome) -> dict[str, Any]:
    """The signed RefundResponse for an outcome: an approval is signed over the request's own orderid
    and invoice; a refusal over the ones that validated."""
    if outcome.approved:
        return refund_response(
            services().settings.private_key,
            orderid=request.raw["orderid"],
            invoice=request.data["invoice"],
            approved=True,
            transactionid=outcome.processor_transaction_id,
            errormessage="",
        )
    return error_response(request.echo(ECHOED), outcome.error_code or ErrorCode.REFUND_FAILED, outcome.message)


def error_response(echo: Mapping[str, str], code: ErrorCode, message: str) -> dict[str, Any]:
    """approved=0, signed over the request's orderid and invoice only where they validated."""
    return refund_response(
        services().settings.private_key,
        orderid=echo.get("orderid", ""),
        invoice=echo.get("invoice", ""),
        approved=False,
        transactionid="",
        errorcode=code.value,
        errormessage=message,
    )
