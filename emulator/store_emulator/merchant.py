"""The merchant's pages: orders with Void/Refund, gateway credentials, and the log of every exchange."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, flash, redirect, render_template, request

from gateway.money import format_money
from gateway.protocol.signing import wire_text

from . import protocol
from .cart import FormError, to_cents
from .current import setting, store
from .gateway_calls import GatewayTrouble, call_gateway
from .store import Order

bp = Blueprint("merchant", __name__)
MAX_ANSWER_DELAY = 60


@bp.get("/admin/orders")
def orders() -> str:
    return render_template("emulator/orders.html", orders=store().orders(), result=request.args.get("result"))


@bp.post("/admin/orders/<int:orderid>/refund")
def refund(orderid: int) -> Response:
    """The Void/Refund button: a signed RefundRequest to the Post-Order URL, its answer shown on the orders page."""
    order = store().order(orderid)
    if order is None or not order.refundable:
        return _show_result(f"Order {orderid} has no payment left to void or refund.")
    try:
        amount = _refund_amount(order, request.form.get("amount", ""))
    except FormError as exc:
        return _show_result(f"Order {order.invoice}: {exc}")
    private_key = setting("PRIVATE_KEY")
    body = protocol.refund_request(order, private_key, amount, amount == order.amounttotal, store().credentials)
    try:
        answer = call_gateway(store(), setting("GATEWAY_URL") + "/post-order", body, "RefundResponse",
                              lambda answer: protocol.refund_response_ok(answer, order, private_key))
    except GatewayTrouble as trouble:
        return _show_result(f"Order {order.invoice}: {trouble}")
    if wire_text(answer.get("approved")) != "1":
        return _show_result(f"Order {order.invoice}: refused ({wire_text(answer.get('errorcode'))}): "
                            f"{wire_text(answer.get('errormessage'))}")
    store().record_refund(order, amount)
    return _show_result(f"Order {order.invoice}: approved: {format_money(amount, order.currency)} back, "
                        f"transaction {wire_text(answer.get('transactionid'))}")


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Response | str:
    """The merchant's Credential 1 and 2 for the gateway (a blank password keeps the current one),
    and how slowly the store answers the gateway's notifications."""
    username, password = store().credentials
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        if not username:
            flash("Credential 1 (username) may not be blank.")
            return redirect("/settings")
        delay = _answer_delay(request.form.get("answer_delay", ""))
        if delay is None:
            flash(f"The store's answer delay must be a number of seconds from 0 to {MAX_ANSWER_DELAY}.")
            return redirect("/settings")
        store().set_credentials(username, request.form.get("password") or password)
        store().set_answer_delay(delay)
        flash("Settings saved.")
        return redirect("/settings")
    return render_template("emulator/settings.html", username=username, answer_delay=store().answer_delay)


def _answer_delay(text: str) -> float | None:
    """Seconds, blank meaning none; None when it is not a number in range."""
    try:
        seconds = float(text.strip() or 0)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_ANSWER_DELAY else None


@bp.get("/log")
def log() -> str:
    return render_template("emulator/log.html", log=store().log())


def _refund_amount(order: Order, dollars: str) -> int:
    """Blank means the whole order, or what is left of it after partial refunds; otherwise the dollars typed,
    in cents."""
    if not dollars.strip():
        return order.amounttotal - order.refunded
    amount = to_cents(dollars, "Amount")
    if amount <= 0:
        raise FormError(f"Amount: {dollars!r} is not more than zero")
    return amount


def _show_result(text: str) -> Response:
    return redirect("/admin/orders?" + urlencode({"result": text}))
