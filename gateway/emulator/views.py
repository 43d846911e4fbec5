"""The emulated store's pages: cart, checkout hand-off, notification receiver, return/error, admin."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Blueprint, Response, current_app, flash, redirect, render_template, request

from ..money import format_money
from ..protocol.jsonbody import BodyError, parse_object
from . import protocol
from .store import Order, Store

bp = Blueprint("emulator", __name__)


def store() -> Store:
    return current_app.extensions["store"]


def config(name: str) -> Any:
    return current_app.config[f"EMULATOR_{name}"]


def base_url() -> str:
    return config("PUBLIC_URL") or request.url_root.rstrip("/")


@bp.app_template_filter("money")
def money_filter(cents: int, currency: str = "USD") -> str:
    return format_money(int(cents), currency)


@bp.get("/")
def cart() -> str:
    cancelled = request.args.get("cancelled")
    return render_template("emulator/cart.html", catalogue=protocol.CATALOGUE, cancelled=cancelled)


@bp.post("/checkout")
def checkout() -> Response | str | tuple[str, int]:
    items = _items_from_form()
    if not items:
        flash("Choose at least one item.")
        return redirect("/")
    extra = {"taxtotal": 1000, "shippingtotal": 500, "discount": 0, "testmode": bool(request.form.get("testmode"))}
    total = sum(item["unitprice"] * item["quantity"] for item in items) + extra["taxtotal"] + extra["shippingtotal"]
    order = store().new_order("USD", total, items, answer_processed=not request.form.get("reject"))
    body = protocol.checkout_request(order, config("PRIVATE_KEY"), base_url(), urlsplit(base_url()).hostname or "",
                                     config("CREDENTIALS"), extra)
    answer, problem = _post(config("GATEWAY_URL") + "/checkout", body)
    signed = answer is not None and protocol.checkout_response_ok(answer, config("PRIVATE_KEY"))
    store().record("store -> gateway", "/checkout", body, answer or problem, "valid" if signed else "INVALID")
    if answer is None or not signed:
        return _store_error(order, problem or "the gateway's CheckoutResponse signature does not match")
    if answer.get("errormessage"):
        return _store_error(order, f"{answer.get('errorcode')}: {answer['errormessage']}")
    return _follow(answer)


@bp.post("/notify")
def notify() -> Response:
    try:
        body = parse_object(request.get_data())
    except BodyError as exc:
        return _answer(None, 0, "400", str(exc))
    order = store().order(body.get("orderid"))
    if not protocol.complete_order_ok(body, config("PRIVATE_KEY")):
        return _answer(body, 0, "401", "signature does not match", signature="INVALID")
    if order is None or order.invoice != body.get("invoice"):
        return _answer(body, 0, "404", "unknown order")
    if str(body.get("amount")) != str(order.amounttotal):
        return _answer(body, 0, "409", f"amount {body.get('amount')} is not the order total {order.amounttotal}")
    if str(body.get("approved")) != "1":
        order.status = "payment failed"
        order.comments.append(f"{body.get('errorcode')}: {body.get('errormessage')}")
        return _answer(body, 0, str(body.get("errorcode") or "PAYMENT_FAILED"), "payment was not approved")
    if not order.answer_processed:
        order.status = "rejected by the store"
        return _answer(body, 0, "OUT_OF_STOCK", "the store could not accept this order")
    order.status, order.transactionid = "paid", str(body.get("transactionid", ""))
    return _answer(body, 1, "", "")


@bp.get("/return")
def returned() -> str | tuple[str, int]:
    rk, k = request.args.get("rk", ""), request.args.get("k", "")
    if k != protocol.return_check(rk, urlsplit(base_url()).hostname or ""):
        return render_template("emulator/message.html", title="Invalid return link", text="The k check failed."), 400
    order = store().order(request.args.get("orderid"))
    return render_template("emulator/return.html", order=order)


@bp.get("/error")
def error() -> str:
    return render_template("emulator/message.html", title="Payment not completed",
                           text=f"The payment did not go through (error {request.args.get('error', '')}).")


@bp.get("/admin/orders")
def orders() -> str:
    return render_template("emulator/orders.html", orders=sorted(store().orders.values(), key=lambda o: -o.orderid),
                           result=request.args.get("result"))


@bp.post("/admin/orders/<int:orderid>/refund")
def refund(orderid: int) -> Response | tuple[str, int]:
    order = store().order(orderid)
    if order is None:
        return render_template("emulator/message.html", title="Unknown order", text=str(orderid)), 404
    amount_text = request.form.get("amount", "").strip()
    try:
        amount = order.amounttotal if not amount_text else int(Decimal(amount_text) * 100)
    except InvalidOperation:
        return redirect("/admin/orders?" + urlencode({"result": f"{amount_text!r} is not an amount"}))
    body = protocol.refund_request(order, config("PRIVATE_KEY"), amount, not amount_text, config("CREDENTIALS"))
    answer, problem = _post(config("GATEWAY_URL") + "/post-order", body)
    signed = answer is not None and protocol.refund_response_ok(answer, order, config("PRIVATE_KEY"))
    store().record("store -> gateway", "/post-order", body, answer or problem, "valid" if signed else "INVALID")
    if answer is None or not signed:
        result = problem or "the RefundResponse signature does not match"
    elif str(answer.get("approved")) == "1":
        order.refunded += amount
        order.status = "refunded" if order.refunded >= order.amounttotal else "partly refunded"
        result = f"approved: {format_money(amount, order.currency)} back, transaction {answer.get('transactionid')}"
    else:
        result = f"refused ({answer.get('errorcode')}): {answer.get('errormessage')}"
    return redirect("/admin/orders?" + urlencode({"result": f"Order {order.invoice}: {result}"}))


@bp.get("/log")
def log() -> str:
    return render_template("emulator/log.html", log=store().log)


def _items_from_form() -> list[dict[str, Any]]:
    items = []
    for product in protocol.CATALOGUE:
        try:
            quantity = int(request.form.get(f"qty-{product['itemid']}", "0") or 0)
        except ValueError:
            quantity = 0
        if quantity > 0:
            items.append({**product, "quantity": quantity})
    return items


def _post(url: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    try:
        response = requests.post(url, json=body, timeout=20)
        return response.json(), ""
    except requests.RequestException as exc:
        return None, f"the gateway could not be reached ({exc.__class__.__name__})"
    except ValueError:
        return None, "the gateway's answer is not JSON"


def _follow(answer: dict[str, Any]) -> Response | str:
    """Send the shopper on as the CheckoutResponse asks: GET with ?paymenttoken=, or a POSTed form."""
    token, url = answer.get("paymenttoken", ""), answer["redirecturl"]
    if str(answer.get("redirectmethod", "GET")).upper() == "POST":
        return render_template("emulator/post_redirect.html", url=url, token=token)
    return redirect(url + ("?" + urlencode({"paymenttoken": token}) if token else ""), 302)


def _store_error(order: Order, message: str) -> tuple[str, int]:
    order.status = "checkout error"
    order.comments.append(message)  # the platform records it in the order's internal comments
    return render_template("emulator/message.html", title="We could not start your payment", text=message), 502


def _answer(body: dict[str, Any] | None, processed: int, code: str, message: str, signature: str = "valid") -> Response:
    answer = {"processed": processed, "errorcode": code, "errormessage": message}
    store().record("gateway -> store", "/notify", body, answer, signature)
    return current_app.json.response(answer)
