"""Exchange 1: a checkout command becomes a payment the shopper can pay."""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Connection, CursorResult, Insert, Select, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import prepared as driver
from ..errorcodes import ErrorCode
from ..models import PAID_STATES, Payment, PaymentState, SeenRequest, one_of, utcnow
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
        if _create(services, command, row):
            return CheckoutOutcome(row["token"])
    except IntegrityError:
        pass  # the randomkey was used before: an exact retry, a replay, or a concurrent twin that committed first
    # Read what the randomkey was used for, or why the payment was not added, and answer as the protocol says.
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


def _create(services: Services, command: CheckoutCommand, row: dict[str, Any]) -> bool:
    """The fast path, without the ORM: the randomkey's replay record and the payment, unless its order
    is paid or a payment already spent the randomkey. False (nothing written) sends the caller to the
    ORM path, which says which; a randomkey used before raises IntegrityError.

    On PostgreSQL one statement, so one round trip (each is a wait for the GIL under load); SQLite
    has no INSERT inside a WITH, so there it is two inserts, committed together with the other
    checkouts of the moment (Database.together)."""
    given = {**row, "endpoint": replay.CHECKOUT, "digest": command.fingerprint}
    if services.db.dialect == "postgresql":
        with services.db.core_statement() as connection:
            return services.db.run(connection, _CLAIM_AND_INSERT, given) == 1

    def claim_and_insert(connection: Connection) -> None:
        replay.claim(connection, replay.CHECKOUT, command.randomkey, command.fingerprint)
        if not _added(connection.execute(_INSERT_UNLESS_PAID_OR_SPENT, row)):
            raise _NotAdded  # rolls the replay record back with it

    try:
        services.db.together(claim_and_insert)
    except _NotAdded:
        return False
    return True


class _NotAdded(Exception):
    pass


def _added(result: Any) -> bool:
    return cast(CursorResult[Any], result).rowcount == 1


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
           one_of(Payment.state, PAID_STATES))
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
    """The new payment's columns, every one that has no NULL to start with: the insert-from-select names them all."""
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
        "state": PaymentState.OPEN, "attempt": 0, "decline_count": 0, "failures": 0,
        **dict.fromkeys(("last_decline", "card_brand", "card_last4", "error_code", "error_message", "attention"), ""),
    }


def _unless_paid_or_spent(query: Select[Any]) -> Select[Any]:
    """Only when no payment of the order is paid and none has spent the randomkey (both over indexes)."""
    paid = select(Payment.id).where(Payment.store_key == bindparam("store_key"), Payment.orderid == bindparam("orderid"),
                                    one_of(Payment.state, PAID_STATES))
    spent = select(Payment.id).where(Payment.randomkey == bindparam("randomkey"))
    return query.where(~paid.exists(), ~spent.exists())


def _payment_values() -> tuple[list[Any], Select[Any]]:
    given = [column for column in Payment.__table__.columns if column.name in _NEW_PAYMENT_COLUMNS]
    return given, select(*(bindparam(column.name, type_=column.type) for column in given))


def _insert_unless_paid_or_spent() -> Insert:
    """INSERT INTO payments (...) SELECT :token, ... WHERE NOT EXISTS (paid) AND NOT EXISTS (spent)."""
    given, values = _payment_values()
    # preserve_rowcount: psycopg forgets an INSERT's row count once SQLAlchemy closes its cursor.
    return (insert(Payment.__table__).from_select(given, _unless_paid_or_spent(values), include_defaults=False)  # type: ignore[arg-type]
            .execution_options(preserve_rowcount=True))


def _claim_and_insert() -> Insert:
    """PostgreSQL: WITH claimed AS (INSERT INTO seen_requests ... WHERE NOT EXISTS (paid) AND NOT EXISTS
    (spent) RETURNING randomkey) INSERT INTO payments (...) SELECT ... FROM claimed. Refused, it writes
    neither row; a used randomkey fails the replay record's primary key."""
    seen = SeenRequest.__table__
    record = select(*(bindparam(name, type_=seen.c[name].type) for name in ("randomkey", "endpoint", "digest", "created_at")))
    claimed = (insert(seen).from_select(["randomkey", "endpoint", "digest", "created_at"], _unless_paid_or_spent(record))  # type: ignore[arg-type]
               .returning(seen.c.randomkey).cte("claimed"))
    given, values = _payment_values()
    return (insert(Payment.__table__).from_select(given, values.select_from(claimed), include_defaults=False)  # type: ignore[arg-type]
            .add_cte(claimed).execution_options(preserve_rowcount=True))


_NEW_PAYMENT_COLUMNS = frozenset((
    "token", "store_key", "orderid", "invoice", "randomkey", "currency", "amount_total", "tax_total", "shipping_total",
    "discount", "email", "billing", "shipping", "items", "cancel_url", "error_url", "notification_url", "return_url",
    "credentials_sealed", "credentials_fingerprint", "test_mode", "expires_at", "created_at", "updated_at", "state",
    "attempt", "decline_count", "failures", "last_decline", "card_brand", "card_last4", "error_code", "error_message",
    "attention"))
_INSERT_UNLESS_PAID_OR_SPENT = _insert_unless_paid_or_spent()
_CLAIM_AND_INSERT = driver.hot(_claim_and_insert(), only="postgresql")
