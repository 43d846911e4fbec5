"""The risk read of a card attempt at a quiet store and at a busy one (issue 21): p50/p99 and their ratio.

    python bench/risk_read.py --quiet-url postgresql://postgres@127.0.0.1:5432/risk_quiet \
        --busy-url postgresql://postgres@127.0.0.1:5432/risk_busy [--attempts 20000] [--runs 300]

Each database is migrated and emptied. The busy one is given --attempts card attempts at the store
over the last hour, each from its own card and address, as a sale brings; the quiet one none. Then
the read every card attempt makes before it is claimed (gateway.payments.risk.signals, for a new card
on a new order) is timed on both, alternately, so both meet the same load on a shared machine. A
ratio near 1 means the read costs what it counts, not what the store sold in the hour.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import create_app  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from gateway.payments import risk  # noqa: E402
from tests import factories  # noqa: E402
from tests.flow_helpers import wipe_database  # noqa: E402
from tests.protocol_helpers import PRIVATE_KEY  # noqa: E402

STORE = "busy.example.com"
ATTEMPTS = """INSERT INTO risk_signals (at, store_key, payment_id, orderid, card_fingerprint, address, network, outcome, reason)
  SELECT now() - (3600.0 * g / :n) * interval '1 second', :store, -g, -g, md5(g::text) || md5(g::text),
    '10.' || g % 250 || '.' || g / 250 % 250 || '.1', '10.' || g % 250 || '.' || g / 250 % 250 || '.0/24', 'approved', ''
  FROM generate_series(:n, 1, -1) AS g"""


def risk_read(url: str, attempts: int) -> Callable[[], object]:
    """The read of a new card's attempt on a new order at the store, with ``attempts`` before it in the hour."""
    upgrade(url)
    wipe_database(url)
    services = create_app(load_settings({}, database_url=url, private_key=PRIVATE_KEY)).extensions["gateway"]
    if attempts:
        with services.db.engine.begin() as connection:
            connection.execute(text(ATTEMPTS), {"n": attempts, "store": STORE})
            connection.exec_driver_sql("ANALYZE risk_signals")
    with factories.bound(services):
        payment = factories.PaymentFactory(store_key=STORE, orderid=10**9)
    limits = risk.thresholds(services, STORE)
    fingerprint = risk.card_fingerprint(services.settings.secret_key, "4111111111111111")
    return lambda: risk.signals(services, payment, fingerprint, "203.0.113.9", limits)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet-url", required=True, help="PostgreSQL database for the quiet store (emptied)")
    parser.add_argument("--busy-url", required=True, help="PostgreSQL database for the busy store (emptied)")
    parser.add_argument("--attempts", type=int, default=20_000, help="the busy store's card attempts in the last hour")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    quiet, busy = risk_read(args.quiet_url, 0), risk_read(args.busy_url, args.attempts)
    times: dict[str, list[float]] = {"quiet": [], "busy": []}
    quiet(), busy()  # warm-up
    for _ in range(args.runs):
        times["quiet"].append(timed(quiet))
        times["busy"].append(timed(busy))
    (q50, q99), (b50, b99) = percentiles(times["quiet"]), percentiles(times["busy"])
    print(f"risk read, quiet store:                 p50 {q50:.2f} ms, p99 {q99:.2f} ms")
    print(f"risk read, {args.attempts:,} attempts in the hour: p50 {b50:.2f} ms, p99 {b99:.2f} ms")
    print(f"busy / quiet p50: {b50 / q50:.2f}x")


if __name__ == "__main__":
    main()
