"""The delivery worker: retries due notifications and finishes work a crashed process left behind.

Run as `gateway notifications work`; any number of workers on any number of hosts may run at once.
Every item is handled on its own (its own transactions, its own failure record and backoff), so
one bad item -- credentials that no longer decrypt, a processor error nobody expected -- never
stops the round for every other store.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from ..models import Notification
from ..observability import requestid
from ..payments.completion import deliver_claimed
from ..payments.recovery import forget_expired_credentials, recover_stale_authorizations
from ..payments.retention import forget_expired_history
from ..payments.reversal import reverse_unfinished_rejections
from ..payments.unconfirmed import settle_unconfirmed_charges
from ..services import Services

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Round:
    delivered: int
    attempted: int
    recovered: int


def run_once(services: Services, batch: int = 20) -> Round:
    """One pass: recover interrupted charges, deliver what is due, reverse unfinished rejections,
    act on charges the store was never told of, erase the credentials of abandoned sessions, and
    delete a bounded batch of history past its retention period."""
    requestid.begin()  # one id per round, on its log lines and on the calls it makes
    recovered = _step("crash recovery", lambda: recover_stale_authorizations(services)) or 0
    claimed = _step("claiming notifications", lambda: services.outbox.claim_due(batch)) or []
    delivered = sum(1 for notification in claimed if _deliver(services, notification))
    recovered += _step("reversing rejected charges", lambda: reverse_unfinished_rejections(services)) or 0
    _step("unconfirmed charges", lambda: settle_unconfirmed_charges(services))
    _step("forgetting expired credentials", lambda: forget_expired_credentials(services))
    _step("retention", lambda: forget_expired_history(services))
    return Round(delivered=delivered, attempted=len(claimed), recovered=recovered or 0)


def _step(what: str, work: Callable[[], T]) -> T | None:
    """A step that fails as a whole (the database is down, say) is logged and the next one still runs."""
    try:
        return work()
    except Exception:  # noqa: BLE001
        log.exception("%s failed this round", what)
        return None


def _deliver(services: Services, notification: Notification) -> bool:
    try:
        return deliver_claimed(services, notification) is not None
    except Exception as exc:  # noqa: BLE001 - recorded on the notification, which retries after its backoff
        log.exception("delivering notification %s failed", notification.id)
        error = repr(exc)
        _step("recording a delivery failure", lambda: services.outbox.release_failed(notification, error))
        return False


def run_forever(services: Services, interval: float = 2.0, batch: int = 20) -> None:
    while True:
        result = run_once(services, batch)
        if result.attempted < batch:
            time.sleep(interval)
