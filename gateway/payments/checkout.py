"""Exchange 1: a checkout command becomes a payment the shopper can pay."""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, Insert, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errorcodes import ErrorCode
from ..models import PAID_STATES, Payment, utcnow
from ..notifications.exchange import UnsafeDestination
from ..services import Services
from . import replay
from .commands import CheckoutCommand, CheckoutOutcome
from .errors import Refused
from .stores import store_key


def start(services: Services, command: CheckoutCommand) -> CheckoutOutcome:
    """The payment of this checkout, new or (for an exact retry) the one already started.

    One transaction, one commit: the randomkey's replay record and the new payment are written
    together or not at all. Everything that needs no database (the token, the sealed credentials)
    is prepared before it begins, so on SQLite the write lock is held for the two inserts alone.
    """
    check_store_urls(services, command)
    row = _new_payment(services, command, store_key(command.notification_url))
    try:
        with services.db.transaction() as session:
            _create(session, command, row)
            return CheckoutOutcome(row["token"])
    except IntegrityError:
        # The randomkey was used before: an exact retry, a replay, or a concurrent twin that
        # committed first. Read what it was used for and answer as the protocol says.
        with services.db.transaction() as session:
            return CheckoutOutcome(_find_or_create(session, command, Payment(**row)).token)


def check_store_urls(services: Services, command: CheckoutCommand) -> None:
    """Refuse, before any money moves, a checkout whose outcome we could never report or show.

    The notification URL passes the very checks delivery applies (https in production, no
    private, loopback, link-local or tunnelled-loopback targets); in production the shopper's
    return, cancel and error pages must be https too, as the hosted page only sends people there.
    """
    try:
        services.store.check(command.notification_url)
    except UnsafeDestination as exc:
        raise Refused(ErrorCode.BAD_REQUEST, f"notificationurl refused: {exc}") from exc
    if services.settings.is_production:
        pages = {"returnurl": command.return_url, "cancelurl": command.cancel_url, "errorurl": command.error_url}
        for name, url in pages.items():
            if urlsplit(url).scheme != "https":
                raise Refused(ErrorCode.BAD_REQUEST, f"{name} must use https")


def _create(session: Session, command: CheckoutCommand, row: dict[str, Any]) -> None:
    """The fast path, two Core inserts: claim the randomkey (a used one raises IntegrityError), then
    the payment unless its order is paid or a payment already spent the randomkey. When that insert
    adds nothing, the ORM path below says which (or adds it, if the reason went meanwhile)."""
    replay.claim(session, replay.CHECKOUT, command.randomkey, command.fingerprint)
    if cast(CursorResult[Any], session.execute(_INSERT_UNLESS_PAID_OR_SPENT, row)).rowcount != 1:
        _refuse_spent(session, command.randomkey)
        _add_unless_paid(session, command, Payment(**row))


def _find_or_create(session: Session, command: CheckoutCommand, payment: Payment) -> Payment:
    if not replay.first_use(session, replay.CHECKOUT, command.randomkey, command.fingerprint):
        existing = session.scalars(select(Payment).where(Payment.randomkey == command.randomkey)).first()
        if existing is not None:
            return existing
    else:
        _refuse_spent(session, command.randomkey)
    return _add_unless_paid(session, command, payment)


# Built once, not per checkout; it reads the invoice alone, not a whole payment row.
PAID_INVOICE = (
    select(Payment.invoice)
    .where(Payment.store_key == bindparam("store_key"), Payment.orderid == bindparam("orderid"),
           Payment.state.in_(PAID_STATES))
    .limit(1)
)


def _add_unless_paid(session: Session, command: CheckoutCommand, payment: Payment) -> Payment:
    paid_invoice = session.scalar(PAID_INVOICE, {"store_key": payment.store_key, "orderid": command.orderid})
    if paid_invoice is not None:
        raise Refused(
            ErrorCode.CHECKOUT_FAILED,
            f"order {command.orderid} (invoice {paid_invoice}) is already paid; a new checkout would charge twice",
        )
    session.add(payment)
    session.flush()
    return payment


def _refuse_spent(session: Session, randomkey: str) -> None:
    """A payment keeps its randomkey after retention forgets the replay record: a replay stays refused,
    whatever notification host it names (one indexed look-up)."""
    if session.scalar(SPENT_RANDOMKEY, {"randomkey": randomkey}) is not None:
        raise Refused(ErrorCode.BAD_REQUEST, f"randomkey {randomkey!r} was already used; every request needs a fresh randomkey")


SPENT_RANDOMKEY = select(Payment.id).where(Payment.randomkey == bindparam("randomkey")).limit(1)


def _new_payment(services: Services, command: CheckoutCommand, key: str) -> dict[str, Any]:
    """The new payment's columns, every one given (the insert-from-select applies no Python defaults)."""
    now = utcnow()
    return {
        "token": secrets.token_urlsafe(32),
        "store_key": key,
        "orderid": command.orderid,
        "invoice": command.invoice,
        "randomkey": command.randomkey,
        "currency": command.currency.upper(),
        "amount_total": command.amount_total,
        "tax_total": command.tax_total,
        "shipping_total": command.shipping_total,
        "discount": command.discount,
        "email": command.email,
        "billing": command.billing,
        "shipping": command.shipping,
        "items": command.items,
        "cancel_url": command.cancel_url,
        "error_url": command.error_url,
        "notification_url": command.notification_url,
        "return_url": command.return_url,
        "credentials_sealed": services.vault.seal(command.credentials),
        "credentials_fingerprint": services.vault.fingerprint(command.credentials),
        "test_mode": command.test_mode,
        "expires_at": now + timedelta(minutes=services.settings.session_minutes),
        "created_at": now,
        "updated_at": now,
    }


def _insert_unless_paid_or_spent() -> Insert:
    """INSERT INTO payments (...) SELECT :token, ... WHERE NOT EXISTS (a paid payment of the order)
    AND NOT EXISTS (a payment with the randomkey): both over indexes, in the insert's own statement."""
    table = Payment.__table__
    given = [column for column in table.columns if column.name in _NEW_PAYMENT_COLUMNS]
    paid = select(Payment.id).where(Payment.store_key == bindparam("store_key"), Payment.orderid == bindparam("orderid"),
                                    Payment.state.in_(PAID_STATES))
    spent = select(Payment.id).where(Payment.randomkey == bindparam("randomkey"))
    values = select(*(bindparam(column.name, type_=column.type) for column in given)).where(~paid.exists(), ~spent.exists())
    # preserve_rowcount: psycopg forgets an INSERT's row count once SQLAlchemy closes its cursor.
    return insert(table).from_select(given, values, include_defaults=True).execution_options(preserve_rowcount=True)  # type: ignore[arg-type]


_NEW_PAYMENT_COLUMNS = frozenset((
    "token", "store_key", "orderid", "invoice", "randomkey", "currency", "amount_total", "tax_total", "shipping_total",
    "discount", "email", "billing", "shipping", "items", "cancel_url", "error_url", "notification_url", "return_url",
    "credentials_sealed", "credentials_fingerprint", "test_mode", "expires_at", "created_at", "updated_at"))
_INSERT_UNLESS_PAID_OR_SPENT = _insert_unless_paid_or_spent()
