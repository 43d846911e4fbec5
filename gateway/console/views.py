"""The console's pages under /console: thin handlers over the console package's functions."""
from __future__ import annotations

import re
import secrets
from typing import Any

from flask import Blueprint, Flask, Response, abort, g, redirect, render_template, request, url_for
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.wrappers import Response as BaseResponse

from .. import admission
from ..money import format_money
from ..payments import history, risk, stores
from ..services import current as services
from . import accounts, actions, audit, auth, search
from .attention import needs_attention
from .timeline import timeline

bp = Blueprint("console", __name__, url_prefix="/console")
PUBLIC = {"console.login"}
# Row ids are 32-bit in the database: a longer number in a path is a page that cannot exist (404).
ID = f"int(max={2**31 - 1})"
# Control characters (PostgreSQL refuses NUL; CR/LF would break a header); forms may keep line breaks.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
BUSY = "The console is checking many sign-ins just now. Wait a few seconds and try again."
# Sign-ins a process works on at once (rate limits, lockout, password check); others wait up to a
# second for a turn, off the CPU, and are then answered 503: a flood's requests spend their time
# parked instead of contending with shoppers' for the CPU (a quarter second still let a 48-thread
# flood slow purchases 3-4x; bench/signin_flood.py).
SIGN_INS = admission.Gate(accounts.HASH_CONCURRENCY)
SIGN_IN_WAIT = 1.0
UNSTORABLE = "This request contains a character the console cannot use (a control character such as NUL)."


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.before_request
def refuse_control_characters() -> None:
    """No query, form or path value with a control character goes further (PostgreSQL refuses NUL);
    line breaks are allowed only in form text such as a reason."""
    path_values = [str(value) for value in (request.view_args or {}).values()]
    query_values = [value for _, value in request.args.items(multi=True)]
    if any(CONTROL.search(value) for value in [*path_values, *query_values]):
        abort(400, UNSTORABLE)
    if any(CONTROL_IN_TEXT.search(value) for _, value in request.form.items(multi=True)):
        abort(400, UNSTORABLE)


@bp.before_request
def admit_sign_in() -> None:
    """A sign-in POST takes one of SIGN_INS or is answered 503; its rate limits are checked by the
    view's wrapper (gateway/web/limits.py), so inside the slot too."""
    if request.endpoint == "console.login" and request.method == "POST":
        if not SIGN_INS.enter(SIGN_IN_WAIT):
            raise ServiceUnavailable(BUSY, retry_after=5)
        g.sign_in_admitted = True


@bp.teardown_request
def release_sign_in(_error: BaseException | None) -> None:
    if g.pop("sign_in_admitted", False):
        SIGN_INS.leave()


@bp.before_request
def require_sign_in() -> BaseResponse | None:
    """No console page or action without a live session; every POST carries the session's CSRF token."""
    if request.endpoint in PUBLIC:
        return None
    who = auth.current(services(), request.cookies.get(auth.COOKIE, ""))
    if who is None:
        return redirect(url_for("console.login", next=request.path if request.method == "GET" else None), 303)
    g.console_operator = who
    g.console_notice = who.notice
    if request.method == "POST":
        auth.check_csrf(who.csrf)
    return None


@bp.after_request
def private_page(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; form-action 'self'; frame-ancestors 'none'")
    return response


@bp.context_processor
def page_context() -> dict[str, Any]:
    return {"operator": g.get("console_operator"), "notice": g.get("console_notice"), "money": format_money,
            "under_attack": _stores_under_attack() if g.get("console_operator") else []}


def _stores_under_attack() -> list[str]:
    """Every console page names the stores under attack now (their payments all need a challenge)."""
    return [status.store_key for status in risk.store_status(services()) if status.under_attack]


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    secret_key = services().settings.secret_key
    nonce = request.cookies.get(auth.LOGIN_COOKIE, "")
    if request.method == "GET" or not nonce:
        nonce = secrets.token_urlsafe(16)
        response = Response(render_template("console/login.html", csrf=auth.login_csrf(secret_key, nonce), error=""))
        auth.set_cookie(response, auth.LOGIN_COOKIE, nonce, max_age=3600)
        return response
    auth.check_csrf(*(auth.login_csrf(key, nonce) for key in services().settings.secret_keys))
    address = request.remote_addr or ""
    try:
        account = accounts.authenticate(services(), request.form.get("username", ""), request.form.get("password", "")[:1024],
                                        request.form.get("code", "")[:12], address)
    except accounts.LoginRefused as exc:
        page = render_template("console/login.html", csrf=auth.login_csrf(secret_key, nonce), error=exc.message)
        return page, 401
    token = auth.start_sign_in(services(), account.id, address)
    with services().db.transaction() as session:
        audit.record(session, account.username, "login", account.username, outcome="signed in", address=address)
    signed_in = redirect(_next_page(request.args.get("next", "")), 303)
    auth.set_cookie(signed_in, auth.COOKIE, token)
    signed_in.delete_cookie(auth.LOGIN_COOKIE, path=auth.PATH)
    return signed_in


def _next_page(target: str) -> str:
    """Only a console path of this site, whatever ``next=`` says (never another host, never a header break)."""
    if target.startswith("/console/") and not CONTROL.search(target) and "//" not in target and "\\" not in target:
        return target
    return url_for("console.payments")


@bp.post("/logout")
def logout() -> BaseResponse:
    auth.end_sign_in(services(), request.cookies.get(auth.COOKIE, ""))
    with services().db.transaction() as session:
        audit.record(session, auth.operator().username, "logout", auth.operator().username, outcome="signed out")
    response = redirect(url_for("console.login"), 303)
    response.delete_cookie(auth.COOKIE, path=auth.PATH, secure=True, httponly=True, samesite="Strict")
    return response


@bp.get("/")
def home() -> BaseResponse:
    return redirect(url_for("console.payments"))


@bp.get("/payments")
def payments() -> Any:
    try:
        query = search.parse(request.args)
    except search.SearchError as exc:
        return render_template("console/payments.html", results=[], form=request.args, error=str(exc)), 400
    return render_template("console/payments.html", results=search.search(services(), query), form=request.args, error="")


@bp.get(f"/payments/<{ID}:payment_id>")
def payment(payment_id: int) -> Any:
    story = timeline(services(), payment_id)
    if story is None:
        abort(404, f"There is no payment {payment_id}.")
    stuck = [item for item in needs_attention(services()) if item.payment_id == payment_id]
    return render_template("console/payment.html", story=story, stuck=stuck)


@bp.get("/attention")
def attention() -> Any:
    return render_template("console/attention.html", items=needs_attention(services()))


def _act(run: Any, back: str) -> BaseResponse:
    """Run one audited action and come back with its outcome (or why it was refused) shown."""
    token = request.cookies.get(auth.COOKIE, "")
    try:
        auth.leave_notice(services(), token, run().message, "good")
    except actions.ActionRefused as exc:
        auth.leave_notice(services(), token, str(exc), "bad")
    return redirect(back, 303)


@bp.post(f"/attention/notifications/<{ID}:notification_id>/requeue")
@auth.operator_only
def requeue(notification_id: int) -> BaseResponse:
    return _act(lambda: actions.requeue_notification(services(), auth.operator().username, notification_id,
                                                     request.form.get("reason", "")), url_for("console.attention"))


@bp.post(f"/attention/ledger/<{ID}:entry_id>/resolve")
@auth.operator_only
def resolve(entry_id: int) -> BaseResponse:
    happened = request.form.get("happened")
    if happened not in ("yes", "no"):
        abort(400, "Say whether the processor's records show the void or refund happened.")
    return _act(lambda: actions.resolve_entry(services(), auth.operator().username, entry_id, happened == "yes",
                                              request.form.get("note", "")), url_for("console.attention"))


@bp.post(f"/attention/payments/<{ID}:payment_id>/reverse")
@auth.operator_only
def reverse(payment_id: int) -> BaseResponse:
    return _act(lambda: actions.reverse_charge(services(), auth.operator().username, payment_id,
                                               request.form.get("reason", "")), url_for("console.attention"))


@bp.post(f"/attention/payments/<{ID}:payment_id>/resolve-sale")
@auth.operator_only
def resolve_sale(payment_id: int) -> BaseResponse:
    charged = request.form.get("charged")
    if charged not in ("yes", "no"):
        abort(400, "Say whether the processor's records show the charge.")
    return _act(lambda: actions.resolve_sale(services(), auth.operator().username, payment_id, charged == "yes",
                                             request.form.get("processor_transaction_id", ""), request.form.get("note", "")),
                url_for("console.attention"))


@bp.get("/stores")
def stores_page() -> Any:
    return render_template("console/stores.html", stores=_stores_with_activity())


@bp.get("/stores/<store_key>")
def store(store_key: str) -> Any:
    return render_template("console/store.html", store=stores.identity(services(), store_key),
                           recent=history.recent_payments(services(), store_key),
                           thresholds=risk.thresholds(services(), store_key))


@bp.post("/stores/<store_key>")
@auth.operator_only
def save_store(store_key: str) -> BaseResponse:
    values = {name: request.form.get(name, "") for name in stores.EDITABLE}
    return _act(lambda: actions.save_store(services(), auth.operator().username, store_key.lower(), values,
                                           request.form.get("reason", "")), url_for("console.store", store_key=store_key))


@bp.post("/stores/<store_key>/risk")
@auth.operator_only
def save_risk_thresholds(store_key: str) -> BaseResponse:
    values = {name: request.form.get(name, "")[:12] for name in risk.THRESHOLD_NAMES}
    return _act(lambda: actions.save_risk_thresholds(services(), auth.operator().username, store_key.lower(), values,
                                                     request.form.get("reason", "")),
                url_for("console.store", store_key=store_key))


@bp.get("/audit")
def audit_log() -> Any:
    actor = request.args.get("actor", "")[:120]
    action = request.args.get("action", "")[:64]
    with services().db.transaction() as session:
        records = audit.recent(session, actor=actor, action=action)
    return render_template("console/audit.html", records=records, actor=actor, action=action)


def _stores_with_activity() -> list[dict[str, Any]]:
    """Every store seen in a checkout or given a profile, with its latest payment."""
    activity = history.latest_payment_by_store(services())
    profiles = {s.store_key: s for s in stores.all_identities(services())}
    keys = sorted(set(activity) | set(profiles))
    return [{"identity": profiles.get(key) or stores.identity(services(), key), "last_payment": activity.get(key)}
            for key in keys]
