"""The shopper's pages and the store's notification URL: cart, checkout hand-off, notify, return, error."""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request

from gateway.protocol.jsonbody import BodyError, parse_object
from gateway.protocol.signing import wire_text

from . import protocol
from .cart import CATALOGUE, CURRENCY, DEFAULT_CHARGES, FormError, read_cart
from .current import base_url, domain, setting, store
from .gateway_calls import GatewayTrouble, call_gateway
from .store import Order, StoreAnswer

bp = Blueprint("shop", __name__)


@bp.get("/")
def cart() -> str:
    """Also the cancelurl: `?cancelled=<orderid>` says the shopper left the payment page."""
    return render_template("emulator/cart.html", catalogue=CATALOGUE, charges=DEFAULT_CHARGES, currency=CURRENCY,
                           cancelled=request.args.get("cancelled"))


@bp.post("/checkout")
def checkout() -> Response | tuple[str, int]:
    try:
        cart = read_cart(request.form)
    except FormError as exc:
        flash(str(exc))
        return redirect("/")
    order = store().new_order(cart, answer_processed=not request.form.get("reject"))
    private_key = setting("PRIVATE_KEY")
    body = protocol.checkout_request(order, private_key, base_url(), domain(), store().credentials,
                                     testmode=bool(request.form.get("testmode")))
    try:
        answer = call_gateway(store(), setting("GATEWAY_URL") + "/checkout", body, "CheckoutResponse",
                              lambda answer: protocol.checkout_response_ok(answer, private_key))
    except GatewayTrouble as trouble:
        return _checkout_error(order, str(trouble))
    if wire_text(answer.get("errormessage")):
        return _checkout_error(order, f"{wire_text(answer.get('errorcode'))}: {wire_text(answer['errormessage'])}")
    url = answer.get("redirecturl")
    if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        return _checkout_error(order, f"the CheckoutResponse has no usable redirecturl ({url!r})")
    return _send_shopper(url, wire_text(answer.get("paymenttoken")), wire_text(answer.get("redirectmethod")))


@bp.post("/notify")
def notify() -> Response:
    """The notificationurl: the gateway's CompleteOrderRequest, answered with a CompleteOrderResponse."""
    time.sleep(store().answer_delay)
    try:
        body = parse_object(request.get_data())
    except BodyError as exc:
        return _answer_gateway(request.get_data(as_text=True)[:2000], StoreAnswer(0, "400", str(exc)), "unreadable")
    if not protocol.complete_order_ok(body, setting("PRIVATE_KEY")):
        return _answer_gateway(body, StoreAnswer(0, "401", "signature does not match"), "INVALID")
    return _answer_gateway(body, store().receive_completion(body), "valid")


@bp.get("/return")
def returned() -> str | tuple[str, int]:
    if not protocol.return_check_ok(request.args.get("k", ""), request.args.get("rk", ""), domain()):
        return render_template("emulator/message.html", title="Invalid return link", text="The k check failed."), 400
    return render_template("emulator/return.html", order=store().order(request.args.get("orderid")))


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on every page: the store's icon rather than a 404 each time."""
    return current_app.send_static_file("favicon.svg")


@bp.get("/error")
def error() -> str:
    return render_template("emulator/message.html", title="Payment not completed",
                           text=f"The payment did not go through (error {request.args.get('error', '')}).")


def _send_shopper(url: str, token: str, method: str) -> Response | tuple[str, int]:
    """On to the gateway as the CheckoutResponse asks: GET with ?paymenttoken=, or a form that POSTs it."""
    if method.upper() == "POST":
        return render_template("emulator/post_redirect.html", url=url, token=token), 200
    if token:
        url += ("&" if "?" in url else "?") + urlencode({"paymenttoken": token})
    return redirect(url, 302)


def _checkout_error(order: Order, message: str) -> tuple[str, int]:
    store().checkout_failed(order, message)
    return render_template("emulator/message.html", title="We could not start your payment", text=message), 502


def _answer_gateway(received: Any, answer: StoreAnswer, signature: str) -> Response:
    store().record("gateway -> store", request.url, received, asdict(answer), "CompleteOrderRequest", signature)
    return jsonify(asdict(answer))
