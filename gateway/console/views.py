"""The console's pages under /console: thin handlers over the console package's functions."""
from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Flask, Response, abort, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..money import format_money
from ..payments import history, risk, stores
from ..services import current as services
from . import accounts, actions, audit, auth, search
from .attention import needs_attention
from .timeline import timeline

bp = Blueprint("console", __name__, url_prefix="/console")
PUBLIC = {"console.login"}


def register(app: Flask) -> None:
    app.register_blueprint(bp)


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
    target = request.args.get("next", "")
    signed_in = redirect(target if target.startswith("/console/") else url_for("console.payments"), 303)
    auth.set_cookie(signed_in, auth.COOKIE, token)
    signed_in.delete_cookie(auth.LOGIN_COOKIE, path=auth.PATH)
    return signed_in


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


@bp.get("/payments/<int:payment_id>")
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


@bp.post("/attention/notifications/<int:notification_id>/requeue")
@auth.operator_only
def requeue(notification_id: int) -> BaseResponse:
    return _act(lambda: actions.requeue_notification(services(), auth.operator().username, notification_id,
                                                     request.form.get("reason", "")), url_for("console.attention"))


@bp.post("/attention/ledger/<int:entry_id>/resolve")
@auth.operator_only
def resolve(entry_id: int) -> BaseResponse:
    happened = request.form.get("happened")
    if happened not in ("yes", "no"):
        abort(400, "Say whether the processor's records show the void or refund happened.")
    return _act(lambda: actions.resolve_entry(services(), auth.operator().username, entry_id, happened == "yes",
                                              request.form.get("note", "")), url_for("console.attention"))


@bp.post("/attention/payments/<int:payment_id>/reverse")
@auth.operator_only
def reverse(payment_id: int) -> BaseResponse:
    return _act(lambda: actions.reverse_charge(services(), auth.operator().username, payment_id,
                                               request.form.get("reason", "")), url_for("console.attention"))


@bp.post("/attention/payments/<int:payment_id>/resolve-sale")
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
