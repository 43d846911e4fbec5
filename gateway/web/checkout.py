"""Exchange 1, the Gateway Checkout URL: CheckoutRequest in, signed CheckoutResponse out.

The protocol stays here: the body is parsed, validated and its md5 signature checked, then the
domain gets a typed :class:`CheckoutCommand`; its outcome, or its refusal, is signed on the way out.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response

from ..errorcodes import ErrorCode
from ..observability import events
from ..payments import checkout as payments_checkout
from ..payments.commands import CheckoutCommand
from ..payments.errors import Refused
from ..protocol.errors import ProtocolError
from ..protocol.messages import checkout_error, checkout_response
from ..protocol.requests import SignedRequest, load_signed
from ..protocol.schemas import CheckoutRequestSchema
from ..vault import Credentials
from . import public_url, read_body, services, signed_json

bp = Blueprint("checkout", __name__)
log = logging.getLogger(__name__)
CHECKOUT_REQUEST = CheckoutRequestSchema()  # schemas are stateless on load; building one per request is slow
SIGNED_FIELDS = ("orderid", "invoice", "amounttotal")


@bp.post("/checkout")
def checkout() -> Response:
    key = services().settings.private_key
    try:
        command = read_checkout_request(read_body())
        outcome = payments_checkout.start(services(), command)
    except ProtocolError as exc:
        return _refused(key, exc.code, exc.message)
    except Refused as exc:
        return _refused(key, exc.code, exc.message)
    except Exception:  # noqa: BLE001 - the platform must always get a signed answer
        log.exception("checkout failed")
        events.checkout("failed")
        return signed_json(checkout_error(key, ProtocolError(
            ErrorCode.CHECKOUT_FAILED, "the gateway could not start the checkout; try again")))
    events.checkout("accepted")
    return signed_json(
        checkout_response(key, outcome.payment_token, public_url("/pay"), services().settings.redirect_method)
    )


def read_checkout_request(body: bytes) -> CheckoutCommand:
    """A validated, authenticated CheckoutRequest as the domain's command, or a ProtocolError to sign."""
    settings = services().settings
    request = load_signed(body, CHECKOUT_REQUEST, settings.private_keys, SIGNED_FIELDS, "CheckoutRequest")
    if request.data["type"].strip().lower() != "sale":
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"type must be 'sale' on the Gateway Checkout URL, got {request.data['type']!r}",
        )
    return _command(request, request.digest(settings.secret_key))


def _command(request: SignedRequest, fingerprint: str) -> CheckoutCommand:
    data = request.data
    return CheckoutCommand(
        orderid=data["orderid"],
        invoice=data["invoice"],
        randomkey=data["randomkey"],
        fingerprint=fingerprint,
        currency=data["currency"],
        amount_total=data["amounttotal"],
        tax_total=data["taxtotal"],
        shipping_total=data["shippingtotal"],
        discount=data["discount"],
        email=data["email"],
        billing=_plain(data["billing"]),
        shipping=_plain(data["shipping"]),
        items=[{**item, "quantity": str(item["quantity"])} for item in data["items"]],
        cancel_url=data["cancelurl"],
        error_url=data["errorurl"],
        notification_url=data["notificationurl"],
        return_url=data["returnurl"],
        credentials=Credentials(data["username"], data["password"]),
        test_mode=data["testmode"],
    )


def _plain(address: dict[str, Any]) -> dict[str, str]:
    return {key: value or "" for key, value in address.items()}


def _refused(key: str, code: ErrorCode, message: str) -> Response:
    log.info("checkout refused: %s %s", code.value, message)
    events.checkout("refused")
    return signed_json(checkout_error(key, ProtocolError(code, message)))
