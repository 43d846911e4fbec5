"""Staff accounts: argon2 password hashes, roles, optional TOTP, and database-backed login throttling.

Failed sign-ins are rows in the database, not counters in memory, so a lockout holds across every
gunicorn worker and host. A locked account is refused before its password is even checked.
"""
from __future__ import annotations

import functools
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..models.base import utcnow
from ..models.console import ROLES, ConsoleAccount, ConsoleSignIn, LoginFailure
from ..services import Services
from . import audit

HASHER = PasswordHasher()
MIN_PASSWORD = 12
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
LOCK_WINDOW = timedelta(minutes=15)
MAX_ACCOUNT_FAILURES = 5
MAX_ADDRESS_FAILURES = 20
TOTP_ISSUER = "3dcart gateway console"
LOCKED = "Too many failed sign-ins. Wait 15 minutes and try again."
# argon2 takes 64 MiB and several cores' worth of work per check: two at once per process, on
# threads at the lowest CPU priority (the console admits that many sign-ins at a time anyway).
HASH_CONCURRENCY = 2

class AccountError(ValueError):
    """An account operation that cannot be done, with the reason to show."""


class LoginRefused(Exception):
    """Sign-in failed; ``message`` is safe to show (it never tells which part was wrong)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class AccountView:
    id: int
    username: str
    role: str
    active: bool
    totp: bool


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verifying against this keeps an unknown username as slow as a wrong password. Made on the first
    sign-in, not at import: hashing costs 0.1 s of CPU that a CLI command listing accounts should not pay."""
    return hasher.hash("not a password of anyone")


def create(services: Services, actor: str, username: str, password: str, role: str) -> AccountView:
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise AccountError("a username is 2-64 characters: lower-case letters, digits and . _ @ -")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    password_hash = _hash(password)
    with services.db.transaction() as session:
        if session.scalars(select(ConsoleAccount).where(ConsoleAccount.username == username)).first():
            raise AccountError(f"account {username!r} already exists")
        account = ConsoleAccount(username=username, password_hash=password_hash, role=role, active=True,
                                 totp_last_step=0, created_at=utcnow())
        session.add(account)
        session.flush()
        audit.record(session, actor, "account.create", username, outcome=f"created with role {role}")
        return _view(account)


def set_active(services: Services, actor: str, username: str, active: bool, reason: str = "") -> AccountView:
    """Disabling an account also ends every session it has open."""
    with services.db.transaction() as session:
        account = _locked(session, username)
        account.active = active
        if not active:
            session.execute(delete(ConsoleSignIn).where(ConsoleSignIn.account_id == account.id))
        audit.record(session, actor, "account.enable" if active else "account.disable", account.username, reason,
                     outcome="enabled" if active else "disabled, sessions ended")
        return _view(account)


def set_password(services: Services, actor: str, username: str, password: str) -> AccountView:
    """A new password ends every session signed in with the old one."""
    password_hash = _hash(password)
    with services.db.transaction() as session:
        account = _locked(session, username)
        account.password_hash = password_hash
        session.execute(delete(ConsoleSignIn).where(ConsoleSignIn.account_id == account.id))
        audit.record(session, actor, "account.set_password", account.username, outcome="password changed, sessions ended")
        return _view(account)


def enable_totp(services: Services, actor: str, username: str) -> str:
    """Give the account a new TOTP secret and return its provisioning URI (shown once, for the app)."""
    secret = pyotp.random_base32()
    with services.db.transaction() as session:
        account = _locked(session, username)
        account.totp_sealed = services.vault.seal_text(secret)
        account.totp_last_step = 0
        audit.record(session, actor, "account.enable_totp", account.username, outcome="second factor required")
        return pyotp.TOTP(secret).provisioning_uri(name=account.username, issuer_name=TOTP_ISSUER)


def all_accounts(services: Services) -> list[AccountView]:
    with services.db.transaction() as session:
        return [_view(a) for a in session.scalars(select(ConsoleAccount).order_by(ConsoleAccount.username))]


def authenticate(services: Services, username: str, password: str, code: str, address: str) -> AccountView:
    """Check a sign-in, counting failures per account and per address; raises LoginRefused.

    The attempt is counted before its password is checked, and the check runs outside any
    database transaction, on a low-priority thread."""
    username = username.strip().lower()[:64]
    address = address[:64]
    if not _claim_attempt(services, username, address):
        raise LoginRefused(LOCKED)
    account = _account(services, username)
    ok = _HASHING.submit(_password_matches, account.password_hash if account else _dummy_hash(HASHER), password).result()
    ok = ok and account is not None and account.active and _code_matches(services, account, code)
    if not ok:
        with services.db.transaction() as session:
            audit.record(session, f"login:{username}", "login.failed", username, outcome="refused", address=address)
        raise LoginRefused("The username, password or code is not correct.")
    assert account is not None
    _forget_failures(services, account, password)
    return _view(account)


def _lowest_priority() -> None:
    """Password checks yield the CPU to every other request: under a sign-in flood shoppers' requests
    still run at once, and only the checks wait. Linux nices one thread; elsewhere the pool's size alone bounds them."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


_HASHING = ThreadPoolExecutor(HASH_CONCURRENCY, thread_name_prefix="password-check", initializer=_lowest_priority)


def _claim_attempt(services: Services, username: str, address: str) -> bool:
    """Count this attempt as a failure before checking it, then see whether it is within the limits.

    The row is committed before the count, so of any number of parallel attempts the k-th to commit
    counts at least k: no more than MAX_ACCOUNT_FAILURES of them can ever reach the password check.
    A refused attempt stays counted (guessing on keeps the lock); a successful sign-in deletes the
    account's rows."""
    now = utcnow()
    with services.db.transaction() as session:
        session.execute(delete(LoginFailure).where(LoginFailure.occurred_at < now - LOCK_WINDOW))
        session.add(LoginFailure(username=username, address=address, occurred_at=now))
    with services.db.transaction() as session:
        if not _locked_out(session, username, address):
            return True
        audit.record(session, f"login:{username}", "login.locked", username, outcome="refused: locked out", address=address)
    return False


def _account(services: Services, username: str) -> ConsoleAccount | None:
    with services.db.one_statement() as session:
        return session.scalars(select(ConsoleAccount).where(ConsoleAccount.username == username)).first()


def _forget_failures(services: Services, account: ConsoleAccount, password: str) -> None:
    """A successful sign-in clears the account's failures (and upgrades an outdated hash)."""
    new_hash = HASHER.hash(password) if HASHER.check_needs_rehash(account.password_hash) else None
    with services.db.transaction() as session:
        session.execute(delete(LoginFailure).where(LoginFailure.username == account.username))
        if new_hash is not None:
            _locked(session, account.username).password_hash = new_hash


def _locked_out(session: Session, username: str, address: str) -> bool:
    since = utcnow() - LOCK_WINDOW

    def failures(*where: Any) -> int:
        return session.scalar(
            select(func.count()).select_from(LoginFailure).where(LoginFailure.occurred_at >= since, *where)) or 0

    return (failures(LoginFailure.username == username) > MAX_ACCOUNT_FAILURES
            or failures(LoginFailure.address == address) > MAX_ADDRESS_FAILURES)


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _code_matches(services: Services, account: ConsoleAccount, code: str) -> bool:
    """Without TOTP any code is ignored; with it, a code is valid once: the step it belongs to is
    recorded by one conditional UPDATE, so of two sign-ins racing with the same code only one wins."""
    if account.totp_sealed is None:
        return True
    totp = pyotp.TOTP(services.vault.open_text(account.totp_sealed))
    now = int(utcnow().timestamp()) // totp.interval
    step = next((s for s in (now, now - 1, now + 1) if code.strip() == totp.at(s * totp.interval)), None)
    if step is None:
        return False
    with services.db.transaction() as session:
        used = session.execute(update(ConsoleAccount)
                               .where(ConsoleAccount.id == account.id, ConsoleAccount.totp_last_step < step)
                               .values(totp_last_step=step))
        return bool(used.rowcount == 1)  # type: ignore[attr-defined]


def _hash(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("a password has at most 1024 characters")
    return HASHER.hash(password)


def _locked(session: Session, username: str) -> ConsoleAccount:
    account = session.scalars(
        select(ConsoleAccount).where(ConsoleAccount.username == username.strip().lower()).with_for_update()
    ).first()
    if account is None:
        raise AccountError(f"no account {username!r}")
    return account


def _view(account: ConsoleAccount) -> AccountView:
    return AccountView(account.id, account.username, account.role, account.active, account.totp_sealed is not None)
