"""The delivery worker: retries due notifications and finishes work a crashed process left behind.

Run as `gateway notifications work`; any number of workers on any number of hosts may run at once.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..observability import requestid
from ..payments.charging import forget_expired_credentials, recover_stale_authorizations
from ..payments.completion import deliver_claimed, reverse_unfinished_rejections
from ..services import Services
from . import outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Round:
    delivered: int
    attempted: int
    recovered: int


def run_once(services: Services, batch: int = 20) -> Round:
    """One pass: recover interrupted charges, deliver what is due, reverse unfinished rejections,
    and erase the merchant credentials of abandoned sessions."""
    requestid.begin()  # one id per round, on its log lines and on the calls it makes
    recovered = recover_stale_authorizations(services)
    claimed = outbox.claim_due(services, batch)
    delivered = sum(1 for notification in claimed if deliver_claimed(services, notification) is not None)
    recovered += reverse_unfinished_rejections(services)
    forget_expired_credentials(services)
    return Round(delivered=delivered, attempted=len(claimed), recovered=recovered)


def run_forever(services: Services, interval: float = 2.0, batch: int = 20) -> None:
    while True:
        try:
            result = run_once(services, batch)
        except Exception:  # noqa: BLE001 - a worker outlives one bad round (the database restarting, say)
            log.exception("delivery round failed")
            result = Round(0, 0, 0)
        if result.attempted < batch:
            time.sleep(interval)
