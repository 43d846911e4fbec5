"""Exchange 1, the Gateway Checkout URL: CheckoutRequest in, signed CheckoutResponse out."""
from __future__ import annotations

import logging

from flask import Blueprint, Response

from ..observability import events
from ..payments.checkout import start_checkout
from ..protocol.errors import ErrorCode, ProtocolError
from ..protocol.messages import checkout_error, checkout_response
from . import public_url, read_body, services, signed_json

bp = Blueprint("checkout", __name__)
log = logging.getLogger(__name__)


@bp.post("/checkout")
def checkout() -> Response:
    key = services().settings.private_key
    try:
        payment = start_checkout(services(), read_body())
    except ProtocolError as exc:
        log.info("checkout refused: %s %s", exc.code.value, exc.message)
        events.checkout("refused")
        return signed_json(checkout_error(key, exc))
    except Exception:  # noqa: BLE001 - the platform must always get a signed answer
        log.exception("checkout failed")
        events.checkout("failed")
        error = ProtocolError(ErrorCode.CHECKOUT_FAILED, "the gateway could not start the checkout; try again")
        return signed_json(checkout_error(key, error))
    events.checkout("accepted")
    return signed_json(
        checkout_response(key, payment.token, public_url("/pay"), services().settings.redirect_method)
    )
