"""What operators read: finding payments, one payment's whole record, and where an item of the
needs-attention queue belongs. The console and the CLI read payments only through here and
``operations``; the tables stay the domain's."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, String, and_, func, literal_column, select, text, tuple_
from sqlalchemy.orm import Session, aliased, contains_eager, selectinload

from ..models import (
    Charge,
    LedgerEntry,
    LedgerKind,
    LedgerOutcome,
    Notification,
    Payment,
    PaymentEvent,
    PostOrderRequest,
    UTCDateTime,
)
from ..services import Services
from .ledger import APPROVED, PENDING, REFUND, SALE, UNKNOWN, VOID

SEARCH_LIMIT = 100
UNSETTLED = (PENDING, UNKNOWN)


@dataclass(frozen=True)
class Criteria:
    """What a payment search asks for; every field left empty matches everything."""

    store: str = ""  # the start of the store key (the notification host)
    orderid: int | None = None
    invoice: str = ""
    processor_transaction_id: str = ""
    card_last4: str = ""
    amount_total: int | None = None  # minor units
    created_from: date | None = None  # UTC days, both ends included
    created_to: date | None = None
    before: int | None = None  # the id of the last payment of the previous page: list those listed after it


@dataclass(frozen=True)
class ListedPayment:
    """A payment as a list shows it: with its charge, and its status in the operator's words."""

    payment: Payment
    status: str  # what happened to the money (voided, refunded, ...), else the payment's state


def find_payments(services: Services, criteria: Criteria, limit: int = SEARCH_LIMIT) -> list[ListedPayment]:
    """Newest first, each with its charge and what happened to its money, in one query; empty
    criteria list the latest payments. Pages follow by keyset (created_at, id), over indexes: a page
    deep in years of history costs what the first does. The store is matched by the start of its key,
    every other field exactly, each over its own index."""
    page = select(Payment.id).order_by(*NEWEST_FIRST).limit(limit)
    if criteria.before is not None:
        page = page.where(tuple_(Payment.created_at, Payment.id) < _position(criteria.before))
    if criteria.orderid is not None:
        page = page.where(Payment.orderid == criteria.orderid)
    if criteria.invoice:
        page = page.where(Payment.invoice == criteria.invoice)
    if criteria.processor_transaction_id:
        page = page.join(Charge, Charge.payment_id == Payment.id).where(
            Charge.processor_transaction_id == criteria.processor_transaction_id)
    if criteria.card_last4:
        page = page.where(Payment.card_last4 == criteria.card_last4)
    if criteria.amount_total is not None:
        page = page.where(Payment.amount_total == criteria.amount_total)
    if criteria.created_from is not None:
        page = page.where(Payment.created_at >= _start(criteria.created_from))
    if criteria.created_to is not None:
        page = page.where(Payment.created_at < _start(criteria.created_to) + timedelta(days=1))
    with services.db.transaction() as session:
        if criteria.store:
            page = page.where(_store_matching(session, criteria.store))
        # The page's payments first (never folded into the join), then their charges and money: the
        # join then reads the charges of at most ``limit`` payments, whatever plan the page takes.
        chosen = page.cte("page").prefix_with("MATERIALIZED")
        statement = (select(Payment, *_MONEY).join(chosen, chosen.c.id == Payment.id)
                     .outerjoin(Charge, Charge.payment_id == Payment.id)
                     .options(contains_eager(Payment.charge)).order_by(*NEWEST_FIRST))
        return [ListedPayment(payment, _status(payment, refunded, voided, unsettled))
                for payment, refunded, voided, unsettled in session.execute(statement)]


def _store_matching(session: Session, start: str) -> ColumnElement[bool]:
    """The stores whose key starts with ``start``. When that is one store (a whole key, or a prefix only
    one store has), an equality, so its newest payments are read along (store_key, created_at) instead
    of every payment of the store being read and sorted; the two ends of the prefix's range tell."""
    prefix = Payment.store_key.startswith(start, autoescape=True)
    ends = [session.scalar(select(Payment.store_key).where(prefix).order_by(_byte_order(session, last)).limit(1))
            for last in (False, True)]
    return Payment.store_key == ends[0] if ends[0] is not None and ends[0] == ends[1] else prefix


def _byte_order(session: Session, descending: bool) -> ColumnElement[Any]:
    """Store keys in the order of the prefix index, so either end of a prefix is one index entry away:
    PostgreSQL's prefix index (varchar_pattern_ops) is in byte order, not the column's collation;
    SQLite compares bytes anyway."""
    if session.get_bind().dialect.name == "postgresql":
        return literal_column(f"payments.store_key USING {'~>~' if descending else '~<~'}")
    return Payment.store_key.desc() if descending else Payment.store_key.asc()


NEWEST_FIRST = (Payment.created_at.desc(), Payment.id.desc())


def _position(payment_id: int) -> ScalarSelect[Any]:
    """Where a payment stands in the list's order: its (created_at, id), as a row to compare with."""
    cursor = aliased(Payment)
    return select(cursor.created_at, cursor.id).where(cursor.id == payment_id).scalar_subquery()


def _on_charge(kind: LedgerKind, *outcomes: LedgerOutcome) -> ColumnElement[bool]:
    return and_(LedgerEntry.charge_id == Charge.id, LedgerEntry.kind == kind, LedgerEntry.outcome.in_(outcomes))


# Per listed charge, from its ledger (index on charge_id): the approved refunds' total, whether an
# approved void exists, and the kind of the oldest void or refund whose outcome nobody knows yet.
_MONEY = (
    select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(_on_charge(REFUND, APPROVED))
    .correlate(Charge).scalar_subquery(),
    # A count, not EXISTS: PostgreSQL may turn an EXISTS into one hashed pass over every void ever made.
    select(func.count()).where(_on_charge(VOID, APPROVED)).correlate(Charge).scalar_subquery() > 0,
    select(LedgerEntry.kind).where(LedgerEntry.charge_id == Charge.id, LedgerEntry.kind != SALE,
                                   LedgerEntry.outcome.in_(UNSETTLED))
    .order_by(LedgerEntry.id).limit(1).correlate(Charge).scalar_subquery(),
)


def _status(payment: Payment, refunded: int | None, voided: bool | None, unsettled: str | None) -> str:
    """A settled void or full refund says it all; money held by a movement nobody knows the outcome of
    comes next (it may yet go either way); then a partial refund; else nothing moved back."""
    if voided:
        return "voided"
    if payment.charge is not None and refunded == payment.charge.amount:
        return "refunded"
    if unsettled:
        return f"{unsettled} unsettled"
    if refunded:
        return "partly refunded"
    return payment.state


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Record:
    """A payment with everything that happened to it: its charge and ledger, its notification and
    every delivery attempt, and the events kept nowhere else (page views, declines)."""

    payment: Payment
    events: list[PaymentEvent]


def record(services: Services, payment_id: int) -> Record | None:
    with services.db.transaction() as session:
        payment = session.scalars(
            select(Payment).where(Payment.id == payment_id).options(
                selectinload(Payment.charge).selectinload(Charge.ledger),
                selectinload(Payment.notification).selectinload(Notification.attempt_log),
            )
        ).first()
        if payment is None:
            return None
        events = list(session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id == payment_id)))
    return Record(payment, events)


def recent_payments(services: Services, store_key: str, limit: int = 20) -> list[Payment]:
    with services.db.transaction() as session:
        return list(session.scalars(select(Payment).where(Payment.store_key == store_key)
                                    .order_by(*NEWEST_FIRST).limit(limit)))


# Each store key once, by jumping from one to the next along the index on (store_key, created_at), then
# each store's newest payment from the same index: two index descents per store, whatever the history.
_LATEST_BY_STORE = text("""
    WITH RECURSIVE stores(store_key) AS (
        SELECT min(store_key) FROM payments
        UNION ALL
        SELECT (SELECT min(store_key) FROM payments WHERE payments.store_key > stores.store_key)
        FROM stores WHERE stores.store_key IS NOT NULL
    )
    SELECT store_key, (SELECT max(created_at) FROM payments WHERE payments.store_key = stores.store_key) AS latest
    FROM stores WHERE store_key IS NOT NULL
""").columns(store_key=String(), latest=UTCDateTime())


def latest_payment_by_store(services: Services) -> dict[str, datetime]:
    """When each store that ever checked out last did."""
    with services.db.transaction() as session:
        return {key: at for key, at in session.execute(_LATEST_BY_STORE)}


def state_of(services: Services, payment_id: int) -> str:
    """A payment's state, or "" when there is no such payment."""
    with services.db.transaction() as session:
        return session.scalar(select(Payment.state).where(Payment.id == payment_id)) or ""


def payment_of_notification(services: Services, notification_id: int) -> int | None:
    with services.db.transaction() as session:
        return session.scalar(select(Notification.payment_id).where(Notification.id == notification_id))


def payment_of_ledger_entry(services: Services, entry_id: int) -> int | None:
    with services.db.transaction() as session:
        return _payment_of_entry(session, entry_id)


def last_ledger_entry(services: Services, payment_id: int) -> LedgerEntry | None:
    """The newest money movement on the payment's charge (its sale, or a void or refund since)."""
    with services.db.transaction() as session:
        return session.scalars(select(LedgerEntry).join(Charge, Charge.id == LedgerEntry.charge_id)
                               .where(Charge.payment_id == payment_id).order_by(LedgerEntry.id.desc())).first()


def _payment_of_entry(session: Session, entry_id: int) -> int | None:
    return session.scalar(select(Charge.payment_id).join(LedgerEntry, LedgerEntry.charge_id == Charge.id)
                          .where(LedgerEntry.id == entry_id))


def payment_of_post_order_request() -> ScalarSelect[int | None]:
    """The payment whose charge a post-order request reserved money on, if it got that far, as a column of a
    query over requests (order numbers are per store: the request's own ledger entry says which charge it was)."""
    return (select(Charge.payment_id).join(LedgerEntry, LedgerEntry.charge_id == Charge.id)
            .where(Charge.orderid == PostOrderRequest.orderid, LedgerEntry.request_key == PostOrderRequest.randomkey)
            .correlate(PostOrderRequest).limit(1).scalar_subquery())
