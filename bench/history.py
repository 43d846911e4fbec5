"""Flat cost as history grows (issue 24): p50/p99 of each request and background job at 1k payments and at
N, on two PostgreSQL databases of the same schema, and their ratio.

    python bench/history.py --small-url postgresql://.../bench_1k --large-url postgresql://.../bench_1m \
        [--payments 1000000] [--runs 30] [--reuse]

Each database is migrated, emptied, then given a history built in SQL (generate_series): 2,000 stores,
a year of timestamps, and per million payments 814k charges (each with its sale; a refund on one in
fifty), 839k notifications (each with one delivery attempt), 1.06M replay records and 1.67M payment
events, every constraint respected. On top, in both databases alike, what the background jobs and the
operators look for today: a few payments needing attention, voids of unknown outcome, dead
notifications, due notifications and open pages with sealed credentials. So the two databases differ
only in history: a figure that grows with it is a query reading history. The two sizes are timed
alternately, call by call, so that both meet the same load on a shared machine; --reuse measures the
histories an earlier run built.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import responses
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import text
from sqlalchemy.engine import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import create_app  # noqa: E402
from gateway.cli import main as gateway_cli  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.db import make_engine  # noqa: E402
from gateway.jobs.rounds import run_once  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from gateway.payments.recovery import forget_expired_credentials  # noqa: E402
from gateway.payments.retention import forget_expired_history  # noqa: E402
from gateway.payments.reversal import reverse_unfinished_rejections  # noqa: E402
from tests.console_helpers import make_account, signed_in  # noqa: E402
from tests.flow_helpers import wipe_database  # noqa: E402
from tests.protocol_helpers import NOTIFY_URL, PRIVATE_KEY, card_form, csrf_from, signed_checkout, signed_refund  # noqa: E402

STORES = 2000
CURRENT = 20  # of each kind of item the jobs and the operators look for, at any size
PER_MILLE_CHARGED, PER_MILLE_NOTIFIED = 814, 839  # failed payments (814..838) are notified approved=0
FINGERPRINT = "f" * 64

# One year of history, oldest first; g is 1..N. Everything is at least a day old: nothing of it is due.
HISTORY = [
    """INSERT INTO payments (id, token, store_key, orderid, invoice, randomkey, currency, amount_total, tax_total,
         shipping_total, discount, email, billing, shipping, items, cancel_url, error_url, notification_url, return_url,
         credentials_sealed, credentials_fingerprint, test_mode, state, attempt, decline_count, last_decline, card_brand,
         card_last4, card_exp_month, card_exp_year, error_code, error_message, attention, attention_at, failures,
         retry_at, expires_at, created_at, updated_at)
       SELECT :base + g, 'bench' || md5(g::text), 'store' || g % :stores || '.example.com', g, 'INV-' || g,
         'bench-' || g, 'USD', 100 + (g * 7919) % 100000, 0, 0, 0, 'shopper' || g || '@example.com',
         '{"firstname": "Ann", "lastname": "Smith", "address": "1 Main St", "city": "Springfield"}',
         '{}', '[{"id": "1", "name": "Widget", "quantity": "1", "price": "10.00"}]',
         'https://store' || g % :stores || '.example.com/cancel', 'https://store' || g % :stores || '.example.com/error',
         'https://store' || g % :stores || '.example.com/notify', 'https://store' || g % :stores || '.example.com/return',
         NULL, :fingerprint, false,
         CASE WHEN g % 1000 < :charged THEN 'completed' WHEN g % 1000 < :notified THEN 'failed' ELSE 'open' END,
         CASE WHEN g % 1000 < :notified THEN 1 ELSE 0 END, 0, '',
         CASE WHEN g % 1000 < :charged THEN 'visa' ELSE '' END,
         CASE WHEN g % 1000 < :charged THEN lpad(((g * 31) % 10000)::text, 4, '0') ELSE '' END,
         CASE WHEN g % 1000 < :charged THEN 12 END, CASE WHEN g % 1000 < :charged THEN 2030 END,
         CASE WHEN g % 1000 BETWEEN :charged AND :notified - 1 THEN 'card_declined' ELSE '' END, '', '', NULL, 0, NULL,
         at + interval '1 hour', at, at + interval '1 minute'
       FROM (SELECT g, now() - interval '1 day' - (:n - g) * interval '365 days' / :n AS at
             FROM generate_series(1::bigint, :n) AS g) AS history""",
    """INSERT INTO charges (payment_id, processor, processor_transaction_id, orderid, invoice, currency, amount, refunded,
         card_brand, card_last4, card_exp_month, card_exp_year, avs_result, cvv_result, test_mode,
         credentials_fingerprint, lock_version, created_at)
       SELECT id, 'sandbox', 'bench_' || id, orderid, invoice, currency, amount_total,
         CASE WHEN id % 50 = 0 THEN 100 ELSE 0 END, card_brand, card_last4, 12, 2030, 'Y', 'M', false, :fingerprint, 0,
         updated_at
       FROM payments WHERE id > :base AND state = 'completed'""",
    """INSERT INTO ledger_entries (charge_id, kind, amount, outcome, processor_ref, message, request_key, attention,
         created_at)
       SELECT id, 'sale', amount, 'approved', processor_transaction_id, 'Approved', NULL, '', created_at
       FROM charges WHERE payment_id > :base
       UNION ALL
       SELECT id, 'refund', 100, 'approved', processor_transaction_id || '_r', 'Approved', 'bench-po-' || payment_id,
         '', created_at + interval '1 day'
       FROM charges WHERE payment_id > :base AND refunded = 100""",
    """INSERT INTO notifications (payment_id, url, payload, state, attempts, next_attempt_at, claimed_until, lease,
         processed, response_errorcode, response_errormessage, last_error, created_at, delivered_at)
       SELECT id, notification_url, json_build_object('orderid', orderid, 'invoice', invoice, 'amount', amount_total,
           'approved', state = 'completed', 'transactionid', 'bench_' || id), 'delivered', 1, updated_at, NULL, 1,
         true, '', '', '', updated_at, updated_at + interval '1 second'
       FROM payments WHERE id > :base AND state IN ('completed', 'failed')""",
    """INSERT INTO notification_attempts (notification_id, started_at, duration_ms, http_status, response_snippet, error)
       SELECT id, created_at, 120, 200, '{"processed": 1}', '' FROM notifications WHERE payment_id > :base""",
    """INSERT INTO seen_requests (randomkey, endpoint, digest, created_at)
       SELECT randomkey, 'checkout', md5(randomkey), created_at FROM payments WHERE id > :base
       UNION ALL
       SELECT 'bench-po-' || id, 'post-order', md5(id::text), created_at + interval '1 day'
       FROM payments WHERE id > :base AND id % 100 < 6""",
    """INSERT INTO payment_events (payment_id, at, kind, detail)
       SELECT id, created_at, 'page_viewed', '' FROM payments WHERE id > :base
       UNION ALL
       SELECT id, updated_at, CASE WHEN state = 'completed' THEN 'charge_approved' ELSE 'charge_declined' END, ''
       FROM payments WHERE id > :base AND id % 100 < 67""",
]

# What is waiting today, the same at every size: taken from the newest payments of the history.
CURRENT_ITEMS = [
    """UPDATE payments SET attention = 'bench: check the processor', attention_at = now() - interval '1 hour'
       WHERE id IN (SELECT id FROM payments WHERE state = 'failed' ORDER BY id DESC LIMIT :k)""",
    """UPDATE charges SET refunded = refunded + 100
       WHERE id IN (SELECT id FROM charges WHERE refunded = 0 ORDER BY id DESC LIMIT :k)""",
    """INSERT INTO ledger_entries (charge_id, kind, amount, outcome, processor_ref, message, request_key, attention,
         created_at)
       SELECT id, 'refund', 100, 'unknown', NULL, 'timeout', NULL, '', now() - interval '1 hour'
       FROM charges WHERE id IN (SELECT id FROM charges WHERE refunded = 100 AND id % 50 <> 0
                                 ORDER BY id DESC LIMIT :k)""",
    """UPDATE notifications SET state = 'dead', attempts = 8, last_error = 'could not connect to the store'
       WHERE id IN (SELECT id FROM notifications ORDER BY id DESC LIMIT :k)""",
    """UPDATE payments SET state = 'open', expires_at = now() + interval '1 hour', credentials_sealed = 'sealed'
       WHERE id IN (SELECT id FROM payments WHERE state = 'open' ORDER BY id DESC LIMIT :k)""",
    # A store with a full page of payments at every size, so its search returns as many rows at 1k as
    # at N (one of 2,000 stores has half a payment at 1k): the ratio then compares like with like.
    """UPDATE payments SET store_key = 'busy.example.com'
       WHERE id IN (SELECT id FROM payments ORDER BY id DESC LIMIT 100 OFFSET 200)""",
]


def build(connection: Connection, payments: int, stores: int = STORES, current: int = CURRENT) -> None:
    """Write a history of ``payments`` payments after any rows already there, then today's items."""
    base = connection.execute(text("SELECT coalesce(max(id), 0) FROM payments")).scalar_one()
    values = {"base": base, "n": payments, "stores": stores, "fingerprint": FINGERPRINT,
              "charged": PER_MILLE_CHARGED, "notified": PER_MILLE_NOTIFIED}
    for statement in HISTORY:
        clause = text(statement)
        connection.execute(clause, {name: value for name, value in values.items() if f":{name}" in statement})
    connection.execute(text("SELECT setval(pg_get_serial_sequence('payments', 'id'), (SELECT max(id) FROM payments))"))
    for statement in CURRENT_ITEMS:
        connection.execute(text(statement), {"k": current})
    for table in ("payments", "charges", "ledger_entries", "notifications", "notification_attempts", "seen_requests",
                  "payment_events"):
        connection.execute(text(f"ANALYZE {table}"))


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p99 of the times, in milliseconds."""
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


Rows = dict[str, Callable[[], object]]


def caught_up(services: Any) -> None:
    """Retention worked off: a history built in one go holds a year of replay records that a running
    worker would have deleted day by day. Measuring rounds that still work off that backlog (a bounded
    2,000 rows per kind each) would time the backlog, not what a round costs in steady state."""
    started, deleted = time.perf_counter(), 0
    while batch := sum(forget_expired_history(services).values()):
        deleted += batch
    if deleted:  # what autovacuum does in steady state: without it each round steps over the dead entries
        with services.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE)")
    print(f"retention caught up: {deleted:,} rows deleted in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def prepare(url: str, payments: int, rebuild: bool) -> Rows:
    """The database at ``url`` with a history of ``payments`` (built unless reused), and each row of the
    issue's table as a call against an app on it."""
    upgrade(url)
    if rebuild:
        wipe_database(url)
        engine = make_engine(url)
        started = time.perf_counter()
        with engine.begin() as connection:
            build(connection, payments)
        print(f"built {payments:,} payments in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        engine.dispose()
    unlimited = "1000000 per minute"
    app = create_app(load_settings({}, database_url=url, private_key=PRIVATE_KEY, limit_card_per_address=unlimited,
                                   limit_card_per_store=unlimited, limit_page_per_address=unlimited))
    services = app.extensions["gateway"]
    caught_up(services)
    client = app.test_client()
    run = f"{time.time_ns() % 10**9}"  # randomkeys and the account name are new in every run, even on a reused history
    make_account(services, f"bench{run}", "operator")
    console = signed_in(app, f"bench{run}")[0]
    cli = CliRunner()
    counter = iter(range(10**9))

    def checkout() -> Any:
        i = next(counter)
        body = signed_checkout(orderid=int(run) * 10_000 + i, randomkey=f"bench-c{run}-{i}")
        answer = client.post("/checkout", data=json.dumps(body), content_type="application/json").get_json()
        assert answer["paymenttoken"], answer
        return answer["paymenttoken"]

    def page() -> None:
        assert client.get("/pay", query_string={"paymenttoken": shown}).status_code == 200

    def purchase() -> None:
        token = checkout()
        form = client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True)
        assert client.post("/pay/submit", data=card_form(token, csrf_from(form))).status_code == 303

    def refund() -> None:
        body = signed_refund(orderid=1, transactionid="bench_1", randomkey=f"bench-r{run}-{next(counter)}")
        client.post("/post-order", data=json.dumps(body), content_type="application/json")

    def get(path: str, what: str = "") -> Callable[[], None]:
        def run_get() -> None:
            answer = (console if path.startswith("/console") else client).get(path)
            assert answer.status_code == 200 and what in answer.get_data(as_text=True)
        return run_get

    def attention_count() -> None:
        result = cli.invoke(gateway_cli, ["attention", "count"], obj=ScriptInfo(create_app=lambda: app))
        assert result.output.strip().isdigit(), result.output

    shown = checkout()
    return {
        "checkout": checkout, "hosted page": page, "purchase (3 requests)": purchase, "refund (refused)": refund,
        "GET /metrics": get("/metrics", "gateway_needs_attention"),
        "console payments list (newest 100)": get("/console/payments"),
        "console search by invoice": get(f"/console/payments?invoice=INV-{payments // 2}"),
        "console search by store": get("/console/payments?store=busy.example"),
        "console search by amount": get("/console/payments?amount=123.45"),
        "console needs-attention page": get("/console/attention", "bench: check the processor"),
        "gateway attention count (CLI)": attention_count,
        "one delivery-worker round": lambda: run_once(services),
        "forgetting expired credentials": lambda: forget_expired_credentials(services),
        "reversing unfinished rejections": lambda: reverse_unfinished_rejections(services),
    }


def measure(small: Rows, large: Rows, runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each row at both sizes, alternately, so both meet the same load on a shared machine."""
    figures: dict[str, tuple[list[float], list[float]]] = {}
    for name in small:
        small[name](), large[name]()  # warm-up
        figures[name] = ([], [])
        for _ in range(runs):
            figures[name][0].append(timed(small[name]))
            figures[name][1].append(timed(large[name]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small-url", required=True, help="PostgreSQL database for the 1k history (emptied)")
    parser.add_argument("--large-url", required=True, help="PostgreSQL database for the N history (emptied)")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="measure the histories an earlier run built")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as store:
        store.add(responses.POST, NOTIFY_URL, json={"processed": 1, "errorcode": "", "errormessage": ""})
        figures = measure(prepare(args.small_url, args.small, not args.reuse),
                          prepare(args.large_url, args.payments, not args.reuse), args.runs)
    print(f"| request or job | p50 at {args.small:,} | p99 | p50 at {args.payments:,} | p99 | p50 ratio |")
    print("|---|---|---|---|---|---|")
    for name, (small, large) in figures.items():
        (p50, p99), (big50, big99) = percentiles(small), percentiles(large)
        print(f"| {name} | {p50:.1f} ms | {p99:.1f} ms | {big50:.1f} ms | {big99:.1f} ms | {big50 / p50:.2f}x |")


if __name__ == "__main__":
    main()
