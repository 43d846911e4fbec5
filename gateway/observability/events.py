"""What the payment code reports as it goes: one call at each call site moves the metrics and, where
the database keeps no other trace, adds a line to the payment's timeline in the console."""
from __future__ import annotations

import logging
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Insert, bindparam, exists, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from .. import prepared as driver
from ..db import Database
from ..memo import Recent, memory_of
from ..models import PaymentEvent, utcnow
from .metrics import (
    CHARGES,
    CHECKOUTS,
    DEAD_LETTERS,
    NOTIFICATION_ATTEMPTS,
    RISK_DECISIONS,
    STORE_SECONDS,
    STORES_UNDER_ATTACK,
)

log = logging.getLogger(__name__)
MAX_EVENTS = 100
PAGE_VIEW = "page_view"
_VIEW_RECORDED = select(exists().where(PaymentEvent.payment_id == bindparam("id"), PaymentEvent.kind == PAGE_VIEW))
# Payments whose first view this worker has seen recorded: a reload then costs no query at all.
_VIEWED: WeakKeyDictionary[Database, Recent[int, bool]] = WeakKeyDictionary()
_ATTACKED: set[str] = set()  # the stores this process last judged under attack


def checkout(outcome: str) -> None:
    CHECKOUTS.labels(outcome).inc()


def page_viewed(db: Database, payment_id: int) -> None:
    """The timeline shows when the shopper first opened the page. A later view writes nothing (a
    commit per view queued every page behind the others on SQLite), nor reads in a worker that saw
    the first one recorded."""
    viewed = memory_of(_VIEWED, db, 4096, 600)
    if viewed.get(payment_id):
        return
    with db.read() as session:
        recorded = bool(session.scalar(_VIEW_RECORDED, {"id": payment_id}))
    if not recorded:
        _remember(db, payment_id, PAGE_VIEW, "")
    viewed.put(payment_id, True, viewed.changes)


def charge_approved() -> None:
    """The timeline already has the charge: its sale ledger entry."""
    CHARGES.labels("approved", "approved").inc()


def charge_declined(db: Database, payment_id: int, error: Any) -> None:
    CHARGES.labels("declined", error.code).inc()
    _remember(db, payment_id, "charge_declined", f"{error.code}: {error.merchant_message}")


def charge_unknown(db: Database, payment_id: int, error: Any) -> None:
    CHARGES.labels("unknown", error.code).inc()
    _remember(db, payment_id, "charge_unknown", error.merchant_message)


def risk_decision(db: Database, payment_id: int, kind: str, reasons: tuple[str, ...], attacked: bool, store_key: str) -> None:
    """Every decision on the payment's timeline and in the counts, one count per reason ("none" for none)."""
    for reason in reasons or ("none",):
        RISK_DECISIONS.labels(kind, reason).inc()
    (_ATTACKED.add if attacked else _ATTACKED.discard)(store_key)
    STORES_UNDER_ATTACK.set(len(_ATTACKED))
    _remember(db, payment_id, f"risk_{kind}", ", ".join(reasons))


def notification_attempt(exchange: Any) -> None:
    outcome = "delivered" if exchange.answer is not None else "failed"
    NOTIFICATION_ATTEMPTS.labels(outcome).inc()
    STORE_SECONDS.labels(outcome).observe(exchange.duration_ms / 1000)


def notification_dead() -> None:
    DEAD_LETTERS.inc()


def _remember(db: Database, payment_id: int, kind: str, detail: str) -> None:
    """Best effort, in one statement: a timeline line is never worth failing a payment for.
    A session keeps at most MAX_EVENTS lines, so reloading a page cannot grow the table without bound."""
    try:
        with db.core_statement() as connection:
            driver.run(connection, _REMEMBER, {"payment_id": payment_id, "at": utcnow(), "kind": kind, "detail": detail[:1000]})
    except SQLAlchemyError:
        log.exception("could not record %s for payment %s", kind, payment_id)


def _remember_statement() -> Insert:
    """Built once (building it per line cost more than running it)."""
    recorded = select(func.count()).select_from(PaymentEvent).where(PaymentEvent.payment_id == bindparam("payment_id"))
    line = select(*(bindparam(name, type_=PaymentEvent.__table__.c[name].type) for name in ("payment_id", "at", "kind", "detail")))
    return insert(PaymentEvent.__table__).from_select(["payment_id", "at", "kind", "detail"],  # type: ignore[arg-type]
                                            line.where(recorded.scalar_subquery() < MAX_EVENTS))


_REMEMBER = driver.hot(_remember_statement())
