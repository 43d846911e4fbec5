"""Exchange 4, the Gateway Post-Order URL: RefundRequest in, signed RefundResponse out."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..payments.refunds import error_response, handle_refund_request
from ..protocol.errors import ErrorCode, ProtocolError
from ..protocol.jsonbody import BodyError, parse_object
from . import services

bp = Blueprint("post_order", __name__)
log = logging.getLogger(__name__)


@bp.post("/post-order")
def post_order() -> Response:
    try:
        body = request.get_data(cache=True)
        return jsonify(handle_refund_request(services(), body))
    except ProtocolError as exc:
        log.info("post-order refused: %s %s", exc.code.value, exc.message)
        return jsonify(error_response(services(), _raw_or_empty(), exc))
    except RequestEntityTooLarge:
        error = ProtocolError(ErrorCode.BAD_REQUEST, "request body is too large")
        return jsonify(error_response(services(), {}, error))
    except Exception:  # noqa: BLE001 - the platform must always get a signed answer
        log.exception("post-order failed")
        error = ProtocolError(ErrorCode.REFUND_FAILED, "the gateway could not process this request; contact support before retrying")
        return jsonify(error_response(services(), _raw_or_empty(), error))


def _raw_or_empty() -> dict:  # type: ignore[type-arg]
    """The request's own fields, so even an error answer is signed over what the store sent."""
    try:
        return parse_object(request.get_data(cache=True))
    except (BodyError, RequestEntityTooLarge):
        return {}
