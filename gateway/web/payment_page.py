"""Exchange 2, the hosted payment page, and the shopper's way back to the store (3b)."""
from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, abort, redirect, render_template, request

from ..cards import BRAND_NAMES
from ..models import NotificationState, PaymentSession, SessionState
from ..observability import events
from ..money import format_money
from ..payments.charging import SubmitResult, cancel, find_session, is_expired, submit_card
from ..payments.completion import notify_store
from ..protocol.errors import ErrorCode
from . import services

bp = Blueprint("payment_page", __name__)
REFRESH_SECONDS = 3


@bp.after_request
def private_page(response: Response) -> Response:
    # The token is in the URL: keep it out of caches, referrers and other sites' frames.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self' https: http:"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/pay", methods=["GET", "POST"])
def show() -> Response | str | tuple[str, int]:
    """The platform sends the shopper here by GET (?paymenttoken=) or POST (form field)."""
    payment = _session_or_404(request.values.get("paymenttoken", ""))
    events.page_viewed(services(), payment.id)
    return _render_state(payment, SubmitResult(payment))


@bp.post("/pay/submit")
def submit() -> Response | str | tuple[str, int]:
    payment = _checked_session()
    form = {name: request.form.get(name, "") for name in ("card_number", "expiry", "cvc", "holder")}
    result = submit_card(services(), payment, form)
    return _render_state(result.payment, result)


@bp.post("/pay/cancel")
def cancel_payment() -> Response | str | tuple[str, int]:
    payment = _checked_session()
    if cancel(services(), payment) or payment.state == SessionState.CANCELLED.value:
        return redirect(payment.cancel_url, 303)
    return _render_state(payment, SubmitResult(payment))


@bp.get("/pay/status")
def status() -> Response | str | tuple[str, int]:
    """The "confirming with the store" page polls here; a due notification is retried on the way."""
    payment = _session_or_404(request.args.get("paymenttoken", ""))
    notification = payment.notification
    if notification is not None and notification.state == NotificationState.PENDING.value:
        notify_store(services(), notification.id, only_due=True)
        payment = _session_or_404(payment.token)
    return _render_state(payment, SubmitResult(payment))


def _render_state(payment: PaymentSession, result: SubmitResult) -> Response | str | tuple[str, int]:
    state = payment.state
    if state == SessionState.COMPLETED.value:
        return redirect(payment.return_url, 303)
    if state in (SessionState.REJECTED.value, SessionState.FAILED.value):
        return redirect(error_redirect(payment), 303)
    if state == SessionState.CANCELLED.value:
        return _message("Payment cancelled", "This payment was cancelled.", payment, 410)
    if is_expired(payment):
        return _message("This payment session has expired", "For your security, payment pages expire. Return to the store and check out again; you have not been charged.", payment, 410)
    if state in (SessionState.AUTHORIZING.value, SessionState.APPROVED.value):
        return render_template("status.html", payment=payment, refresh=REFRESH_SECONDS, view=_order_view(payment)), 202
    code = 422 if result.field_errors else (402 if result.decline else 200)
    return render_template(
        "pay.html",
        payment=payment,
        view=_order_view(payment),
        csrf=csrf_token(payment.token),
        errors=result.field_errors,
        decline=result.decline,
        attempts_left=services().settings.max_declines - payment.decline_count,
        values={"holder": request.form.get("holder", ""), "expiry": request.form.get("expiry", "")},
    ), code


def error_redirect(payment: PaymentSession) -> str:
    """errorurl with its ``error`` parameter replaced by the error code, as the text asks."""
    code = payment.error_code or ErrorCode.CHECKOUT_FAILED.value
    parts = urlsplit(payment.error_url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "error"]
    query.append(("error", code))
    return urlunsplit(parts._replace(query=urlencode(query)))


def csrf_token(payment_token: str) -> str:
    key = services().settings.secret_key.encode()
    return hmac.new(key, b"csrf:" + payment_token.encode(), hashlib.sha256).hexdigest()


def _checked_session() -> PaymentSession:
    payment = _session_or_404(request.form.get("paymenttoken", ""))
    if not hmac.compare_digest(request.form.get("csrf", ""), csrf_token(payment.token)):
        abort(400, "This form has expired or was not sent by our payment page. Go back and try again.")
    return payment


def _session_or_404(token: str) -> PaymentSession:
    payment = find_session(services(), token)
    if payment is None:
        abort(404, "We could not find this payment. The link may be incomplete; return to the store and check out again.")
    return payment


def _message(title: str, text: str, payment: PaymentSession, code: int) -> tuple[str, int]:
    return render_template("message.html", title=title, message=text, back_url=payment.cancel_url), code


def _order_view(payment: PaymentSession) -> dict[str, object]:
    def money(cents: int) -> str:
        return format_money(cents, payment.currency)

    items = [
        {
            "name": item.get("itemname", ""),
            "sku": item.get("itemid", ""),
            "quantity": item.get("quantity", ""),
            "unit": money(int(item.get("unitprice", 0))),
            "line": money(int((Decimal(item.get("quantity", "1")) * int(item.get("unitprice", 0))).to_integral_value())),
        }
        for item in payment.items
    ]
    return {
        "items": items,
        "tax": money(payment.tax_total),
        "shipping": money(payment.shipping_total),
        "discount": money(payment.discount),
        "total": money(payment.amount_total),
        "brand": BRAND_NAMES.get(payment.card_brand, ""),
    }
