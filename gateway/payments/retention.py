"""Forgetting history nobody needs any more, a few hundred rows at a time, so the pay path never waits.

Each kind of row has its period (GATEWAY_RETENTION_*, docs/operations.md); the worker deletes at
most ``retention_batch_rows`` rows per statement and ``retention_batches_per_round`` statements of
each kind per round, each statement its own short transaction that skips rows another transaction
holds. Kept forever and never touched here: payments, charges, ledger entries, notifications,
post-order requests with their replay records, and the console audit log.

Replay records: the protocol's signatures carry no time, so a captured request stays validly signed
forever. A checkout's record is what lets an exact retry find its payment while the payment page
lives; after that the payment itself keeps the randomkey and refuses a replay (checkout.py). A
post-order record is kept forever: a replayed partial refund would move money again if it were
forgotten, and the ledger only caps refunds at what was captured.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.dml import ReturningDelete

from ..config import Settings
from ..models import (
    Endpoint,
    Notification,
    NotificationAttempt,
    NotificationState,
    Payment,
    PaymentState,
    RiskSignal,
    SeenRequest,
    utcnow,
)
from ..models.console import ConsoleSignIn, LoginFailure, PaymentEvent
from ..services import Services

# A payment in one of these states, and not waiting for an operator, has nothing left to happen to it.
FINAL_STATES = (PaymentState.COMPLETED, PaymentState.REJECTED, PaymentState.FAILED, PaymentState.CANCELLED)


@dataclass(frozen=True)
class Kind:
    """One kind of row retention deletes: its table's key, the time its period runs from (each batch
    takes the oldest rows first, along that column's index), and which rows are past their period."""

    name: str
    key: InstrumentedAttribute[Any]
    time: InstrumentedAttribute[datetime]
    expired: Callable[[Settings, datetime], ColumnElement[bool]]


def _checkout_replay_records(settings: Settings, now: datetime) -> ColumnElement[bool]:
    return and_(SeenRequest.endpoint == Endpoint.CHECKOUT,
                SeenRequest.created_at < now - timedelta(days=settings.retention_replay_days))


def _payment_events(settings: Settings, now: datetime) -> ColumnElement[bool]:
    cutoff = now - timedelta(days=settings.retention_history_days)
    finished = or_(Payment.state.in_(FINAL_STATES), and_(Payment.state == PaymentState.OPEN, Payment.expires_at < cutoff))
    return and_(PaymentEvent.at < cutoff,
                exists().where(Payment.id == PaymentEvent.payment_id, Payment.attention == "", finished))


def _delivery_attempts(settings: Settings, now: datetime) -> ColumnElement[bool]:
    delivered = exists().where(Notification.id == NotificationAttempt.notification_id,
                               Notification.state == NotificationState.DELIVERED)
    return and_(NotificationAttempt.started_at < now - timedelta(days=settings.retention_history_days), delivered)


def _console_sign_ins(settings: Settings, now: datetime) -> ColumnElement[bool]:
    return ConsoleSignIn.last_seen_at < now - timedelta(hours=settings.retention_console_hours)


def _risk_signals(settings: Settings, now: datetime) -> ColumnElement[bool]:
    return RiskSignal.at < now - timedelta(days=settings.retention_risk_days)


def _sign_in_failures(settings: Settings, now: datetime) -> ColumnElement[bool]:
    return LoginFailure.occurred_at < now - timedelta(hours=settings.retention_console_hours)


KINDS = (
    Kind("checkout replay records", SeenRequest.randomkey, SeenRequest.created_at, _checkout_replay_records),
    Kind("payment events", PaymentEvent.id, PaymentEvent.at, _payment_events),
    Kind("delivery attempts", NotificationAttempt.id, NotificationAttempt.started_at, _delivery_attempts),
    Kind("console sign-ins", ConsoleSignIn.token_hash, ConsoleSignIn.last_seen_at, _console_sign_ins),
    Kind("sign-in failures", LoginFailure.id, LoginFailure.occurred_at, _sign_in_failures),
    Kind("risk signals", RiskSignal.id, RiskSignal.at, _risk_signals),
)


def forget_expired_history(services: Services) -> dict[str, int]:
    """One round of retention: the number of rows of each kind deleted, each kind within the round's bound."""
    now = utcnow()
    return {kind.name: _delete_in_batches(services, kind, now) for kind in KINDS}


def count_expired_history(services: Services) -> dict[str, int]:
    """What retention would delete now, all rounds together (`gateway retention run --dry-run`)."""
    now = utcnow()
    with services.db.transaction() as session:
        return {kind.name: session.scalar(select(func.count()).select_from(kind.key.class_)
                                          .where(kind.expired(services.settings, now))) or 0
                for kind in KINDS}


def _delete_in_batches(services: Services, kind: Kind, now: datetime) -> int:
    settings = services.settings
    deleted = 0
    for _ in range(settings.retention_batches_per_round):
        batch = _delete_batch(services, kind, now, settings.retention_batch_rows)
        deleted += batch
        if batch < settings.retention_batch_rows:
            break
    return deleted


def _delete_batch(services: Services, kind: Kind, now: datetime, rows: int) -> int:
    """One statement, committed on its own."""
    with services.db.one_statement() as session:
        # Counted from RETURNING: SQLite's driver reports no row count for a statement that starts with WITH.
        return len(session.connection().execute(batch_statement(kind, services.settings, now, rows)).all())


def batch_statement(kind: Kind, settings: Settings, now: datetime, rows: int) -> ReturningDelete[tuple[Any]]:
    """At most ``rows`` rows past their period, the oldest first along the time index (so the cost follows
    the batch, not the table); on PostgreSQL rows another transaction holds are skipped, never waited for."""
    # Chosen once (MATERIALIZED): as a plain IN subquery PostgreSQL may run the LIMIT again for each
    # row it deletes, and a batch then deletes more than its bound.
    chosen = (select(kind.key.label("key")).where(kind.expired(settings, now)).order_by(kind.time).limit(rows)
              .with_for_update(skip_locked=True).cte("chosen").prefix_with("MATERIALIZED"))
    return delete(kind.key.class_).where(kind.key.in_(select(chosen.c.key))).returning(kind.key)
