"""Needs attention: what the gateway cannot finish by itself, with the reason, instead of silent
retries forever or silent give-ups. Also the per-item failure record and backoff of background work."""
from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..models import Payment, utcnow
from ..services import Services

log = logging.getLogger(__name__)
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
REASON_CHARS = 2000


def flag(session: Session, payment_id: int, reason: str) -> None:
    """Mark a payment as waiting for an operator (no automatic retry), keeping the time it first needed one."""
    _mark(session, payment_id, attention=reason[:REASON_CHARS], retry_at=None,
          attention_at=func.coalesce(Payment.attention_at, utcnow()))
    log.warning("payment %s needs attention: %s", payment_id, reason)


# The columns of a payment that no longer needs anyone, for a guarded move that settles it.
CLEARED: dict[str, Any] = {"attention": "", "attention_at": None, "failures": 0, "retry_at": None}


def clear(session: Session, payment_id: int) -> None:
    _mark(session, payment_id, **CLEARED)


def _mark(session: Session, payment_id: int, **values: object) -> None:
    """Attention is about the payment, not a step of it: ``updated_at`` (the attempt's age) is kept."""
    session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(updated_at=Payment.updated_at, **values)
        .execution_options(synchronize_session=False)
    )


def due(now: datetime) -> ColumnElement[bool]:
    """Background work may touch a payment when its backoff has passed, and never while it waits for an
    operator (flagged without a retry time): asking again would only repeat the same refusal."""
    return or_(Payment.retry_at <= now, and_(Payment.retry_at.is_(None), Payment.attention == ""))


def backoff(failures: int) -> timedelta:
    """Exponential backoff with jitter, capped at an hour."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (1 << min(max(0, failures - 1), 20)))
    return ceiling * (0.5 + 0.5 * random.random())


def record_failure(services: Services, payment_id: int, reason: str) -> None:
    """One more failed try on this payment: visible to operators, and not retried before its backoff."""
    with services.db.transaction() as session:
        failures = session.scalar(select(Payment.failures).where(Payment.id == payment_id))
        if failures is None:
            return
        retry_at = utcnow() + backoff(failures + 1)
        flag(session, payment_id, f"{reason} (failed {failures + 1} time(s); next try after {retry_at:%H:%M:%S} UTC)")
        _mark(session, payment_id, failures=failures + 1, retry_at=retry_at)


def isolated(services: Services, payment_id: int, what: str, work: Callable[[], object]) -> bool:
    """Run one item of background work so that its failure is recorded on it and stops nothing else."""
    try:
        work()
    except Exception as exc:  # noqa: BLE001 - one bad item must never stop the round for every store
        log.exception("%s of payment %s failed", what, payment_id)
        try:
            record_failure(services, payment_id, f"{what} failed: {exc.__class__.__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the database itself may be the problem; the next round retries
            log.exception("could not record the failure of payment %s", payment_id)
        return False
    return True
