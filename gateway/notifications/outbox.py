"""The outbox of CompleteOrderRequests: written with the payment outcome, delivered at least once.

A delivery first claims its row with a short lease (compare-and-set), so two workers never post
the same notification at the same time; a worker that dies mid-delivery loses its lease and the
next one retries. A delivery always ends before its lease does: the store call has one deadline,
and a lease with less than one delivery left on it is renewed before posting. Each claim
increments the row's ``lease`` number, a fencing token: a worker whose lease was taken over may
still hear the store, but it may no longer write the outcome, so a late writer can never
overwrite ``delivered`` with ``dead`` or apply a second answer. The store's answer and whatever
it changes are written in one transaction.

A notification is stored as the outcome it reports (:class:`CompleteOrder`); it is signed as a
CompleteOrderRequest, with a fresh randomkey, each time it is posted.
"""
from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import ColumnElement, bindparam, or_, select, update
from sqlalchemy.orm import Session

from .. import prepared as driver
from ..config import ConfigError
from ..db import Database
from ..machine import Machine
from ..models import Notification, NotificationAttempt, NotificationState, UTCDateTime, utcnow
from ..observability import events
from ..protocol.messages import complete_order_request
from .exchange import Exchange, StoreAnswer

if TYPE_CHECKING:
    from .client import StoreClient

log = logging.getLogger(__name__)
OnAnswer = Callable[[Session, Notification, StoreAnswer], None]
BASE_DELAY = timedelta(seconds=5)
MAX_DELAY = timedelta(hours=1)
# A lease must outlast a delivery by this much: clocks differ between hosts, and the answer is written after it.
LEASE_MARGIN = timedelta(seconds=5)
N = NotificationState
NOTIFICATIONS = Machine(Notification, "state", {
    N.PENDING: frozenset({N.DELIVERED, N.DEAD}),
    N.DEAD: frozenset({N.PENDING}),
})
# The statements every delivery runs, built once (see Machine.prepare).
NEW_NOTIFICATION = driver.insert_of(
    Notification, ("payment_id", "url", "payload", "next_attempt_at", "claimed_until", "lease"), returning=(Notification.id,))
_NEW_ATTEMPT = driver.insert_of(
    NotificationAttempt, ("notification_id", "started_at", "duration_ms", "http_status", "response_snippet", "error"))
_DELIVERED = NOTIFICATIONS.prepare(
    NotificationState.PENDING, NotificationState.DELIVERED,
    Notification.lease == bindparam("held_lease"),
    attempts=Notification.attempts + 1,
    processed=bindparam("answer_processed"),
    response_errorcode=bindparam("answer_errorcode"),
    response_errormessage=bindparam("answer_errormessage"),
    delivered_at=bindparam("answered_at", type_=UTCDateTime()),
    claimed_until=None,
)

_RENEW = (
    update(Notification)
    .where(Notification.id == bindparam("renewed"), Notification.lease == bindparam("held_lease"),
           Notification.state == NotificationState.PENDING)
    .values(claimed_until=bindparam("until", type_=UTCDateTime()))
)


@dataclass(frozen=True)
class CompleteOrder:
    """What the store is told of a payment: approved with the charge's processor transaction id, or not
    with an error code and message."""

    orderid: int
    invoice: str
    amount: int
    approved: bool
    transactionid: str = ""
    errorcode: str = ""
    errormessage: str = ""


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: up to 5s, 10s, 20s ... capped at an hour."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (1 << min(max(0, attempts - 1), 20)))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Notification.state == NotificationState.PENDING,
        or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
    )


class Outbox:
    """The notifications of one database, posted through one store client and signed with the
    application's private key. ``lease`` outlasts any delivery; after ``max_attempts`` a
    notification is dead until an operator requeues it."""

    def __init__(self, db: Database, client: StoreClient, private_key: str, *, lease: timedelta,
                 max_attempts: int) -> None:
        if lease < timedelta(seconds=client.timeout) + LEASE_MARGIN:
            raise ConfigError(f"a delivery lease of {lease.total_seconds():g} s does not outlast one "
                              f"{client.timeout:g} s delivery by {LEASE_MARGIN.total_seconds():g} s")
        self.db = db
        self.client = client
        self.private_key = private_key
        self.lease = lease
        self.max_attempts = max_attempts

    def enqueue(self, session: Session, payment_id: int, url: str, message: CompleteOrder, *,
                claimed: bool) -> Notification:
        """Write the notification in the caller's transaction; ``claimed`` writes it with this process's
        delivery lease already taken (one statement fewer than claiming it afterwards). If the process
        dies before delivering, the worker takes it over once that lease has run out."""
        row = self.new(payment_id, url, message, claimed=claimed)
        # A plain statement, not the unit of work: the row is written once and never changed through this session.
        return self.written(row, driver.run(session.connection(), NEW_NOTIFICATION, row).scalar_one())

    def new(self, payment_id: int, url: str, message: CompleteOrder, *, claimed: bool) -> dict[str, Any]:
        """A new notification's row (NEW_NOTIFICATION's parameters), for a caller that writes it itself."""
        now = utcnow()
        return {"payment_id": payment_id, "url": url, "payload": asdict(message), "next_attempt_at": now,
                "claimed_until": now + self.lease if claimed else None, "lease": 1 if claimed else 0}

    @staticmethod
    def written(row: dict[str, Any], notification_id: int) -> Notification:
        """The notification as ``new``'s row was written, under its id."""
        return Notification(**row, id=notification_id, state=NotificationState.PENDING, attempts=0)

    def claim(self, notification_id: int, *, only_due: bool = False) -> Notification | None:
        """Take the delivery lease on one notification, or None if it is done or someone else holds it."""
        now = utcnow()
        conditions = [Notification.id == notification_id, *_claimable(now)]
        if only_due:
            conditions.append(Notification.next_attempt_at <= now)
        with self.db.one_statement() as session:
            return session.scalars(
                update(Notification).where(*conditions)
                .values(claimed_until=now + self.lease, lease=Notification.lease + 1)
                .returning(Notification)
            ).first()

    def claim_due(self, limit: int) -> list[Notification]:
        """Claim up to ``limit`` due notifications; SKIP LOCKED lets workers on several hosts share the queue."""
        now = utcnow()
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Notification)
                .where(*_claimable(now), Notification.next_attempt_at <= now)
                .order_by(Notification.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.claimed_until = now + self.lease
                row.lease += 1
            return list(rows)

    def deliver(self, notification: Notification, on_answer: OnAnswer) -> StoreAnswer | None:
        """Post a claimed notification once, within its lease, and record the attempt; the answer is
        applied atomically, and only while this worker's lease is still the latest one."""
        if not self._lease_outlasts_a_delivery(notification):
            return None  # another worker has taken it over
        exchange = self.client.post(notification.url, self.signed(notification.payload))
        events.notification_attempt(exchange)
        with self.db.transaction() as session:
            if exchange.answer is not None and _record_answer(session, notification, exchange):
                on_answer(session, notification, exchange.answer)
                return exchange.answer
            row = _locked(session, notification.id)
            _log_attempt(session, row, exchange)
            if exchange.answer is not None or not _holds_lease(row, notification):
                log.warning("notification %s: answer after losing the lease, discarded (%s)", row.id,
                            exchange.error or "answered")
                return None
            self._schedule_retry(session, row, exchange.error)
            return None

    def _lease_outlasts_a_delivery(self, notification: Notification) -> bool:
        """Renew a lease with less than one delivery left on it (the last ones of a claimed batch),
        so no other worker can claim the notification and post it again while the store is still
        answering this one. False: the lease is lost."""
        needed = utcnow() + timedelta(seconds=self.client.timeout) + LEASE_MARGIN
        if notification.claimed_until is not None and notification.claimed_until >= needed:
            return True
        until = utcnow() + self.lease
        with self.db.one_statement() as session:
            held = {"renewed": notification.id, "held_lease": notification.lease, "until": until}
            renewed = session.connection().execute(_RENEW, held).rowcount == 1
        if renewed:
            notification.claimed_until = until
        return renewed

    def signed(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The CompleteOrderRequest for a stored outcome, with a fresh randomkey."""
        fields = {name: payload[name] for name in CompleteOrder.__dataclass_fields__ if name in payload}
        return complete_order_request(self.private_key, **fields)

    def release_failed(self, notification: Notification, error: str) -> None:
        """A delivery broke on our side (not the store's): record why and retry after the backoff."""
        with self.db.transaction() as session:
            row = _locked(session, notification.id)
            if _holds_lease(row, notification):
                row.attempts += 1
                self._schedule_retry(session, row, f"gateway error while delivering: {error}"[:1000])

    def _schedule_retry(self, session: Session, row: Notification, error: str) -> None:
        row.last_error = error
        row.claimed_until = None
        if row.attempts >= self.max_attempts:
            session.flush()
            NOTIFICATIONS.move(session, row.id, NotificationState.PENDING, NotificationState.DEAD)
            events.notification_dead()
        else:
            row.next_attempt_at = utcnow() + backoff(row.attempts)

    def requeue(self, notification_id: int) -> bool:
        """An operator sends a dead notification round again (after fixing the store, say)."""
        with self.db.transaction() as session:
            return NOTIFICATIONS.move(
                session, notification_id, NotificationState.DEAD, NotificationState.PENDING,
                attempts=0, next_attempt_at=utcnow(), claimed_until=None,
            )


def _record_answer(session: Session, notification: Notification, exchange: Exchange) -> bool:
    """The store answered: mark the notification delivered, if this worker's lease is still the latest."""
    assert exchange.answer is not None
    delivered = NOTIFICATIONS.run(
        session, _DELIVERED, notification.id, held_lease=notification.lease, answer_processed=exchange.answer.processed,
        answer_errorcode=exchange.answer.errorcode[:64], answer_errormessage=exchange.answer.errormessage[:2000],
        answered_at=utcnow(),
    ).rowcount == 1
    if delivered:
        _record_attempt(session, notification.id, exchange)
    return delivered


def _locked(session: Session, notification_id: int) -> Notification:
    row = session.get(Notification, notification_id, populate_existing=True, with_for_update=True)
    assert row is not None
    return row


def _holds_lease(row: Notification, notification: Notification) -> bool:
    return row.state == NotificationState.PENDING and row.lease == notification.lease


def _log_attempt(session: Session, row: Notification, exchange: Exchange) -> None:
    row.attempts += 1
    _record_attempt(session, row.id, exchange)


def _record_attempt(session: Session, notification_id: int, exchange: Exchange) -> None:
    driver.run(session.connection(), _NEW_ATTEMPT, {
        "notification_id": notification_id,
        "started_at": utcnow() - timedelta(milliseconds=exchange.duration_ms),
        "duration_ms": exchange.duration_ms,
        "http_status": exchange.http_status,
        "response_snippet": exchange.snippet,
        "error": exchange.error,
    })


def in_state(db: Database, state: str, limit: int = 100) -> list[Notification]:
    """The first ``limit`` notifications in ``state``, oldest first: a read, needing no store client."""
    with db.transaction() as session:
        return list(session.scalars(
            select(Notification).where(Notification.state == state).order_by(Notification.id).limit(limit)))
