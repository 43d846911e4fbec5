"""Exchange 2, the hosted payment page, and the shopper's way back to the store (3b)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import re
import secrets
from decimal import Decimal
from typing import Callable, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from weakref import WeakKeyDictionary

from babel import Locale
from flask import Blueprint, Response, abort, current_app, g, jsonify, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, gettext
from markupsafe import Markup, escape
from werkzeug.wrappers import Response as BaseResponse

from .. import admission, budget, challenge
from ..cards import BRAND_NAMES, client_rules
from ..db import Database
from ..errorcodes import ErrorCode
from ..memo import Recent, memory_of
from ..models import NotificationState, Payment, PaymentState
from ..money import format_money
from ..observability import events
from ..payments.charging import cancel, submit_card
from ..payments.completion import notify_store
from ..payments.queries import PaymentView, find_payment, find_view, is_expired
from ..payments.stores import StoreIdentity, identity
from . import limits, services
from .assets import compress_page
from .shopper_text import BUSY, client_messages, translated

bp = Blueprint("payment_page", __name__)
POLL_SECONDS = 3
WAITING_STATES = (PaymentState.AUTHORIZING, PaymentState.APPROVED)
BUSY_RETRY_SECONDS = 5
T = TypeVar("T")
# Formatted orders of the payments being viewed; a page is open for minutes, and a line is forgotten after.
_ORDER_LINES: Recent[tuple[str, str], dict[str, object]] = Recent(size=4096, seconds=600)
# The blank card form's fields, per mount point, language and accepted brands.
_BLANK_FIELDS: Recent[tuple[str, str, tuple[str, ...]], Markup] = Recent(size=64, seconds=3600)
# The blank card form's whole page of a store, per mount point, language and test mode, with a slot for
# each thing that differs between its payments (see _blank_form); one memory per app (its processor).
BlankPage = tuple[tuple[str, ...], tuple[int, ...]]
_BLANK_PAGES: WeakKeyDictionary[Database, Recent[tuple[str, str, StoreIdentity, bool], BlankPage]] = WeakKeyDictionary()
# Marks a slot in a blank page: a NUL (never in a template, never in a stored text) and this process's nonce.
_SLOT_MARK = secrets.token_hex(8)
_SLOT = re.compile(f"\x00{_SLOT_MARK}:(\\d)\x00")
TOKEN_SLOT, CSRF_SLOT, TOTAL_SLOT, INVOICE_SLOT, SUMMARY_SLOT = range(5)


@bp.after_request
def private_page(response: Response) -> Response:
    # The token is in the URL: keep it out of caches, referrers and other sites' frames.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = content_security_policy(g.get("payment"))
    response.headers["X-Content-Type-Options"] = "nosniff"
    return compress_page(response)


def content_security_policy(payment: PaymentView | None) -> str:
    """Only our own script and styles; forms may lead to the store, over http only in development."""
    targets = ["'self'", "https:"]
    if payment is not None and not services().settings.is_production:
        targets += sorted({_origin(url) for url in (payment.cancel_url, payment.return_url, payment.error_url)
                           if urlsplit(url).scheme == "http"})
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
            f"frame-ancestors 'none'; base-uri 'none'; form-action {' '.join(targets)}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.route("/pay", methods=["GET", "POST"])
@limits.page_lookups
@limits.unknown_tokens
def show() -> BaseResponse | str | tuple[str, int]:
    """The platform sends the shopper here by GET (?paymenttoken=) or POST (form field)."""
    payment = _view_or_404(request.values.get("paymenttoken", ""))
    events.page_viewed(services().db, payment.id)
    return _render_state(payment)


def admitted(view: Callable[[], ResponseReturnValue]) -> Callable[[], ResponseReturnValue]:
    """A pay submission, from its first query to its answer, runs in one of the worker's pay slots
    (gateway/admission.py). One that finds none free while its budget still has room for the
    processor call starts nothing."""

    @functools.wraps(view)
    def in_a_slot() -> ResponseReturnValue:
        left = budget.remaining()
        wait = None if left is None else max(0.0, left - services().settings.processor_timeout_seconds)
        try:
            with services().pay_slots.slot(timeout=wait):
                return view()
        except admission.Busy:
            payment = _view_or_404(request.form.get("paymenttoken", ""))
            response = make_response(_render_state(payment, decline=BUSY, busy=True, values=request.form))
            response.headers["Retry-After"] = str(BUSY_RETRY_SECONDS)
            return response

    return in_a_slot


@bp.post("/pay/submit")
@admitted
@limits.unknown_tokens
@limits.card_attempts
def submit() -> BaseResponse | str | tuple[str, int]:
    payment = _checked_payment()
    limits.check_store(payment.store_key)
    form = {name: request.form.get(name, "") for name in ("card_number", "expiry", "cvc", "holder")}
    result = submit_card(services(), payment, form, client_address=limits.client_address(), solution_ok=_solution(payment))
    return _render_state(PaymentView.of(result.payment), errors=result.field_errors, decline=result.decline,
                         challenge=result.challenge, values=form)


def _solution(payment: Payment) -> bool | None:
    """Whether the proof of work the form carried solves this payment's next attempt; None without one."""
    posted = request.form.get("altcha", "")
    if not posted:
        return None
    return challenge.verify(services().settings.secret_key, challenge.binding(payment.token, payment.attempt + 1), posted)


@bp.post("/pay/cancel")
@limits.unknown_tokens
def cancel_payment() -> BaseResponse | str | tuple[str, int]:
    payment = _checked_payment()
    if cancel(services(), payment) or payment.state == PaymentState.CANCELLED:
        return redirect(payment.cancel_url, 303)
    return _render_state(PaymentView.of(payment))


@bp.get("/pay/status")
@limits.page_lookups
@limits.unknown_tokens
def status() -> BaseResponse | str | tuple[str, int]:
    """The "confirming with the store" page polls here; a due notification is retried on the way."""
    payment = _view_or_404(request.args.get("paymenttoken", ""))
    if payment.notification_id is not None and payment.notification_state == NotificationState.PENDING:
        notify_store(services(), payment.notification_id, only_due=True)
        payment = _view_or_404(payment.token)
    if request.args.get("format") == "json":
        return _status_json(payment)
    return _render_state(payment)


def _status_json(payment: PaymentView) -> Response:
    """What the status page's script polls: still waiting, or the page to go to next."""
    waiting = payment.state in WAITING_STATES and not is_expired(payment) and not _unconfirmed(payment)
    body = {"state": payment.state, "waiting": waiting,
            "next": None if waiting else url_for("payment_page.status", paymenttoken=payment.token)}
    return jsonify(body)


def _unconfirmed(payment: PaymentView) -> bool:
    """Charged, but the store's confirmation went dead: stop waiting and say so."""
    return payment.state == PaymentState.APPROVED and payment.notification_state == NotificationState.DEAD


def _render_state(payment: PaymentView, errors: dict[str, str] | None = None, decline: str = "", busy: bool = False,
                  challenge: bool = False, values: dict[str, str] | None = None) -> BaseResponse | str | tuple[str, int]:
    """The page for the payment's state; on the card form, what the last submission got (field errors, a
    decline, no free pay slot, or a challenge to solve first) and the fields it may show again."""
    state = payment.state
    if state == PaymentState.COMPLETED:
        return redirect(payment.return_url, 303)
    if state in (PaymentState.REJECTED, PaymentState.FAILED):
        return redirect(error_redirect(payment), 303)
    if state == PaymentState.CANCELLED:
        return _message(gettext("Payment cancelled"), gettext("This payment was cancelled. You have not been charged."), payment, 410)
    if is_expired(payment):
        return _message(gettext("This payment session has expired"), gettext("For your security, payment pages expire. Return to the store and check out again; you have not been charged."), payment, 410)
    if _unconfirmed(payment):
        return _message(gettext("Payment received, order not yet confirmed"), gettext("Your payment went through, but the store has not confirmed your order yet. The store's support will contact you; please do not pay again."), payment, 200)
    if state in WAITING_STATES:
        return render_template("status.html", refresh=POLL_SECONDS, **_page(payment)), 202
    errors, values = errors or {}, values or {}
    shown = _challenge(payment, challenge)
    if not (errors or decline or busy or shown or any(values.values())):
        return _blank_form(payment)
    code = 503 if busy else 422 if errors else (402 if decline else 200)
    return _pay_page(payment, _page(payment), csrf_token(payment.token), errors, decline, shown, values), code


def _pay_page(payment: PaymentView, page: dict[str, object], csrf: str, errors: dict[str, str], decline: str,
              challenge: dict[str, object] | None, values: dict[str, str]) -> str:
    accepts = services().processor.accepts
    return render_template(
        "pay.html",
        csrf=csrf,
        errors={name: translated(message) for name, message in errors.items()},
        decline=translated(decline),
        attempts_left=services().settings.max_declines - payment.decline_count,
        card_fields=_card_fields(errors, {"holder": values.get("holder", ""), "expiry": values.get("expiry", "")},
                                 {brand: name for brand, name in BRAND_NAMES.items() if brand in accepts.brands}),
        card_rules=client_rules(accepts),
        card_messages=client_messages(),
        challenge=challenge,
        **page,
    )


def _blank_form(payment: PaymentView) -> str:
    """The card form as a page view shows it. Its page is the same for every payment of a store in a
    language but for five things (the token, its form key, the total, the invoice, the order summary),
    so it is rendered once per store and language with a slot for each, and a view fills them in,
    escaped as the template escapes them: the render was a sixth of a page view's CPU."""
    page = _page(payment)
    key = (request.script_root, str(get_locale() or "en"), cast(StoreIdentity, page["merchant"]), bool(page["test_mode"]))
    blank_pages = memory_of(_BLANK_PAGES, services().db, 1024, 600)
    texts, slots = blank_pages.get_or_make(key, lambda: _slotted(payment, page))
    view = cast(dict[str, object], page["view"])
    values = (payment.token, csrf_token(payment.token), escape(view["total"]), escape(payment.invoice), view["summary"])
    filled = [texts[0]]
    for slot, text in zip(slots, texts[1:], strict=True):
        filled += (str(values[slot]), text)
    return "".join(filled)


def _slotted(payment: PaymentView, page: dict[str, object]) -> BlankPage:
    """The blank form's page rendered with a mark in each slot, cut at the marks: its texts and, between
    each two, which slot goes there."""
    def mark(slot: int) -> str:
        return f"\x00{_SLOT_MARK}:{slot}\x00"

    marked = dataclasses.replace(payment, token=mark(TOKEN_SLOT), invoice=mark(INVOICE_SLOT))
    view = {**cast(dict[str, object], page["view"]), "total": mark(TOTAL_SLOT), "summary": Markup(mark(SUMMARY_SLOT))}
    marked_page = {**page, "payment": marked, "view": view, "switch_url": _switcher(marked.token)}
    pieces = _SLOT.split(_pay_page(marked, marked_page, mark(CSRF_SLOT), {}, "", None, {}))
    return tuple(pieces[0::2]), tuple(int(slot) for slot in pieces[1::2])


def _card_fields(errors: dict[str, str], values: dict[str, str], brands: dict[str, str]) -> Markup:
    """The card form's fields. Blank (a page view, not the answer to a submission) they are the same for
    every payment in a language, so they are rendered once per language: they were a third of a page."""

    def render() -> Markup:
        return Markup(render_template("_card_fields.html", errors=errors, values=values, brands=brands))

    if errors or any(values.values()):
        return render()
    return _BLANK_FIELDS.get_or_make((request.script_root, str(get_locale() or "en"), tuple(brands)), render)


def _challenge(payment: PaymentView, asked: bool) -> dict[str, object] | None:
    """The proof of work the card form carries, bound to the next attempt (gateway/challenge.py): when the
    risk step's decision on a submitted card was "challenge" (a page view only reads, so it does not ask
    the risk step beforehand). The app setting CHALLENGE_EVERY_PAYMENT shows it on every page (the
    browser tests' seam)."""
    wanted = current_app.config.get("CHALLENGE_EVERY_PAYMENT") or asked
    if not wanted:
        return None
    return challenge.issue(services().settings.secret_key, challenge.binding(payment.token, payment.attempt + 1))


def _page(payment: PaymentView) -> dict[str, object]:
    """What every shopper page of a payment shows: the order, the store, the language switch, test mode."""
    g.payment = payment
    _show, submit, cancel = _page_urls(request.script_root, str(get_locale() or "en"))
    return {
        "payment": payment,
        "view": _order_view(payment),
        "merchant": identity(services(), payment.store_key),
        "test_mode": payment.test_mode or services().processor.name == "sandbox",
        "switch_url": _switcher(payment.token),
        "submit_url": submit,
        "cancel_action": cancel,
    }


def _switcher(token: str) -> Callable[[str], str]:
    """The page's link to itself in another language."""
    show, _submit, _cancel = _page_urls(request.script_root, str(get_locale() or "en"))
    here = f"{show}?paymenttoken={token}"  # a token is URL-safe (TOKEN_SHAPE)
    return lambda code: f"{here}&lang={code}"


@functools.lru_cache(maxsize=64)
def _page_urls(script_root: str, lang: str) -> tuple[str, str, str]:
    """The page's own routes for a mount point and language, built once (url_for was a tenth of a render)."""
    return (url_for("payment_page.show"), url_for("payment_page.submit", lang=lang),
            url_for("payment_page.cancel_payment", lang=lang))


def error_redirect(payment: PaymentView) -> str:
    """errorurl with its ``error`` parameter replaced by the error code, as the text asks."""
    code = payment.error_code or ErrorCode.CHECKOUT_FAILED.value
    parts = urlsplit(payment.error_url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "error"]
    query.append(("error", code))
    return urlunsplit(parts._replace(query=urlencode(query)))


def csrf_token(payment_token: str, key: str | None = None) -> str:
    secret = key or services().settings.secret_key
    return hmac.new(secret.encode(), b"csrf:" + payment_token.encode(), hashlib.sha256).hexdigest()


def _checked_payment() -> Payment:
    payment = _payment_or_404(request.form.get("paymenttoken", ""))
    sent = request.form.get("csrf", "").encode("utf-8", "replace")  # compare_digest refuses non-ASCII text
    # A page served before a secret-key rotation still pays: its token is checked under every key in use.
    if not any(hmac.compare_digest(sent, csrf_token(payment.token, key).encode()) for key in services().settings.secret_keys):
        abort(400, gettext("This form has expired or was not sent by our payment page. Go back and try again."))
    return payment


def _payment_or_404(token: str) -> Payment:
    """The payment to act on (pay, cancel), with everything the pay path needs."""
    return _found(find_payment(services(), token))


def _view_or_404(token: str) -> PaymentView:
    """The payment to show."""
    return _found(find_view(services(), token))


def _found(payment: T | None) -> T:
    if payment is None:
        abort(404, gettext("We could not find this payment. The link may be incomplete; return to the store and check out again."))
    return payment


def _message(title: str, text: str, payment: PaymentView, code: int) -> tuple[str, int]:
    return render_template("message.html", title=title, message=text, back_url=payment.cancel_url, **_page(payment)), code


def _order_view(payment: PaymentView) -> dict[str, object]:
    """The order as the page shows it: its lines and totals never change, so they are formatted, and
    its summary rendered, once per payment and language (Babel's currency formatting was a tenth of a
    page view, the summary's template a tenth of the rest)."""
    locale = get_locale() or "en"
    lines = _ORDER_LINES.get_or_make((payment.token, str(locale)), lambda: _order_lines(payment, locale))
    return {**lines, "brand": BRAND_NAMES.get(payment.card_brand, "")}


def _order_lines(payment: PaymentView, locale: Locale | str) -> dict[str, object]:

    def money(cents: int) -> str:
        return format_money(cents, payment.currency, locale)

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
    lines = {
        "items": items,
        "tax": money(payment.tax_total),
        "shipping": money(payment.shipping_total),
        "discount": money(payment.discount),
        "total": money(payment.amount_total),
    }
    return {**lines, "summary": Markup(render_template("_order.html", payment=payment, view=lines))}
