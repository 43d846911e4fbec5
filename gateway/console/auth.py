"""Console sign-in sessions: a random token in a Secure, HttpOnly, SameSite=Strict cookie, kept in the
database with its CSRF token and last activity, so an idle timeout, a logout or a disabled account
ends it on every worker at once."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, Callable

from flask import abort, g, request
from sqlalchemy import delete, select, update
from werkzeug.wrappers import Response as BaseResponse

from ..models.base import utcnow
from ..models.console import OPERATOR, ConsoleAccount, ConsoleSignIn
from ..services import Services

COOKIE = "gateway_console"
LOGIN_COOKIE = "gateway_console_login"
PATH = "/console"


@dataclass(frozen=True)
class Operator:
    """Who is signed in to this request."""

    account_id: int
    username: str
    role: str
    csrf: str
    notice: tuple[str, str] | None = None  # (text, good|bad) left by the previous action

    @property
    def can_act(self) -> bool:
        return self.role == OPERATOR


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_sign_in(services: Services, account_id: int, address: str) -> str:
    """A fresh token for a successful sign-in (never reuse one from before sign-in)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with services.db.transaction() as session:
        session.add(ConsoleSignIn(token_hash=_digest(token), account_id=account_id, csrf=secrets.token_hex(32),
                                   address=address[:64], notice="", created_at=now, last_seen_at=now))
    return token


def end_sign_in(services: Services, token: str) -> None:
    with services.db.transaction() as session:
        session.execute(delete(ConsoleSignIn).where(ConsoleSignIn.token_hash == _digest(token)))


def current(services: Services, token: str) -> Operator | None:
    """The signed-in operator, or None; an idle or disabled session is deleted on sight."""
    if not token or len(token) > 100:
        return None
    idle = timedelta(minutes=services.settings.console_idle_minutes)
    now = utcnow()
    with services.db.transaction() as session:
        row = session.execute(
            select(ConsoleSignIn, ConsoleAccount)
            .join(ConsoleAccount, ConsoleAccount.id == ConsoleSignIn.account_id)
            .where(ConsoleSignIn.token_hash == _digest(token))
        ).first()
        if row is None:
            return None
        sign_in, account = row
        if not account.active or sign_in.last_seen_at < now - idle:
            session.delete(sign_in)
            return None
        sign_in.last_seen_at = now
        notice = tuple(sign_in.notice.split("\n", 1)[::-1]) if sign_in.notice else None
        sign_in.notice = ""
        return Operator(account.id, account.username, account.role, sign_in.csrf, notice)  # type: ignore[arg-type]


def leave_notice(services: Services, token: str, text: str, kind: str) -> None:
    """Carry an action's outcome to the page the browser is redirected to (shown once)."""
    with services.db.transaction() as session:
        session.execute(update(ConsoleSignIn).where(ConsoleSignIn.token_hash == _digest(token))
                        .values(notice=f"{kind}\n{text[:500]}"))


def set_cookie(response: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, secure=True, httponly=True, samesite="Strict")


def login_csrf(secret_key: str, nonce: str) -> str:
    """The sign-in form has no session yet: its token is bound to a nonce cookie instead."""
    return hmac.new(secret_key.encode(), b"console-login:" + nonce.encode(), hashlib.sha256).hexdigest()


def check_csrf(*expected: str) -> None:
    """The form's token is one of ``expected`` (a sign-in form accepts one per secret key while it rotates).
    Compared as bytes: compare_digest refuses a str with non-ASCII characters, which anyone can send."""
    sent = request.form.get("csrf", "").encode()
    if not any(hmac.compare_digest(sent, token.encode()) for token in expected):
        abort(400, "This form has expired or did not come from the console. Reload the page and try again.")


def operator() -> Operator:
    who: Operator = g.console_operator
    return who


def operator_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Viewers see everything but change nothing."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not operator().can_act:
            abort(403, "Your account may view the console but not act; ask an operator.")
        return view(*args, **kwargs)

    return guarded
