"""Exchange 4, the Gateway Post-Order URL: RefundRequest in, signed RefundResponse out."""
from __future__ import annotations

import logging

from flask import Blueprint, Response

from ..payments.refunds import ECHOED, error_response, handle_refund_request, read_refund_request
from ..protocol.errors import ErrorCode, ProtocolError
from . import read_body, services, signed_json

bp = Blueprint("post_order", __name__)
log = logging.getLogger(__name__)


@bp.post("/post-order")
def post_order() -> Response:
    try:
        refund_request = read_refund_request(services(), read_body())
    except ProtocolError as exc:
        log.info("post-order refused: %s %s", exc.code.value, exc.message)
        return signed_json(error_response(services(), exc.echo, exc))
    try:
        return signed_json(handle_refund_request(services(), refund_request))
    except ProtocolError as exc:
        log.info("post-order refused: %s %s", exc.code.value, exc.message)
        return signed_json(error_response(services(), refund_request.echo(ECHOED), exc))
    except Exception:  # noqa: BLE001 - the platform must always get a signed answer
        log.exception("post-order failed")
        error = ProtocolError(ErrorCode.REFUND_FAILED, "the gateway could not process this request; contact support before retrying")
        return signed_json(error_response(services(), refund_request.echo(ECHOED), error))
