"""Retention deletes each kind of history after its period, in bounded batches, and never what is kept forever."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from gateway.models import (
    Charge,
    Endpoint,
    LedgerEntry,
    Notification,
    NotificationAttempt,
    Payment,
    PostOrderRequest,
    RiskOutcome,
    RiskSignal,
    SeenRequest,
    utcnow,
)
from gateway.models.console import AuditRecord, ConsoleAccount, ConsoleSignIn, LoginFailure, PaymentEvent
from gateway.payments.retention import KINDS, Kind, batch_statement, forget_expired_history

from .. import factories
from ..flow_helpers import approve_all, open_session, pay
from ..protocol_helpers import post_json, signed_checkout, signed_refund

DAY = timedelta(days=1)


@pytest.fixture
def short(services: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Periods short enough to cross in a test: replay 2 days, history 10 days, console 5 hours, risk 3 days."""
    monkeypatch.setattr(services, "settings", replace(
        services.settings, retention_replay_days=2, retention_history_days=10, retention_console_hours=5,
        retention_risk_days=3))
    return services


def add(services: Any, *rows: Any) -> None:
    with services.db.transaction() as session:
        session.add_all(rows)


def count(services: Any, model: Any) -> int:
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def seen(randomkey: str, endpoint: Endpoint, age: timedelta) -> SeenRequest:
    return SeenRequest(randomkey=randomkey, endpoint=endpoint, digest="d" * 64, created_at=utcnow() - age)


def payment_with_events(services: Any, age: timedelta, **payment: Any) -> int:
    with factories.bound(services):
        payment_id = factories.PaymentFactory(**payment).id
    add(services, PaymentEvent(payment_id=payment_id, kind="page_view", at=utcnow() - age))
    return payment_id


def delivered_attempt(services: Any, age: timedelta, state: str = "delivered") -> None:
    with factories.bound(services):
        notification_id = factories.NotificationFactory(state=state).id
    add(services, NotificationAttempt(notification_id=notification_id, started_at=utcnow() - age))


def account(services: Any) -> int:
    row = ConsoleAccount(username="ops", password_hash="x", role="operator")
    add(services, row)
    return row.id


def test_checkout_replay_records_are_deleted_after_their_period_and_kept_before(short):
    add(short, seen("old", Endpoint.CHECKOUT, 3 * DAY), seen("recent", Endpoint.CHECKOUT, DAY))
    assert forget_expired_history(short)["checkout replay records"] == 1
    with short.db.transaction() as session:
        assert session.scalars(select(SeenRequest.randomkey)).all() == ["recent"]


def test_post_order_replay_records_are_kept_forever(short):
    add(short, seen("refund-of-long-ago", Endpoint.POST_ORDER, 3650 * DAY))
    forget_expired_history(short)
    assert count(short, SeenRequest) == 1


@pytest.mark.parametrize("payment", [
    {"state": "completed"}, {"state": "rejected"}, {"state": "failed"}, {"state": "cancelled"},
    {"state": "open", "expires_at": utcnow() - 30 * DAY},
], ids=["completed", "rejected", "failed", "cancelled", "abandoned"])
def test_payment_events_of_a_final_payment_are_deleted_after_their_period_and_kept_before(short, payment):
    payment_with_events(short, 11 * DAY, **payment)
    payment_with_events(short, 9 * DAY, **payment)
    assert forget_expired_history(short)["payment events"] == 1
    with short.db.transaction() as session:
        assert session.scalar(select(PaymentEvent.at)) > utcnow() - 10 * DAY


@pytest.mark.parametrize("payment", [
    {"state": "open"}, {"state": "authorizing"}, {"state": "approved"},
    {"state": "completed", "attention": "the refund's outcome is unknown"},
], ids=["open", "authorizing", "approved", "needs-attention"])
def test_payment_events_of_a_payment_not_yet_final_are_kept(short, payment):
    payment_with_events(short, 3650 * DAY, **payment)
    assert forget_expired_history(short)["payment events"] == 0
    assert count(short, PaymentEvent) == 1


def test_delivery_attempts_of_a_delivered_notification_are_deleted_after_their_period_and_kept_before(short):
    delivered_attempt(short, 11 * DAY)
    delivered_attempt(short, 9 * DAY)
    assert forget_expired_history(short)["delivery attempts"] == 1
    assert count(short, NotificationAttempt) == 1


@pytest.mark.parametrize("state", ["pending", "dead"])
def test_delivery_attempts_of_an_undelivered_notification_are_kept(short, state):
    delivered_attempt(short, 3650 * DAY, state=state)
    assert forget_expired_history(short)["delivery attempts"] == 0
    assert count(short, NotificationAttempt) == 1


def test_console_sign_ins_and_sign_in_failures_are_deleted_after_their_period_and_kept_before(short):
    account_id = account(short)
    now = utcnow()
    add(short,
        ConsoleSignIn(token_hash="a" * 64, account_id=account_id, csrf="c", last_seen_at=now - timedelta(hours=6)),
        ConsoleSignIn(token_hash="b" * 64, account_id=account_id, csrf="c", last_seen_at=now - timedelta(hours=4)),
        LoginFailure(username="ops", address="192.0.2.1", occurred_at=now - timedelta(hours=6)),
        LoginFailure(username="ops", address="192.0.2.1", occurred_at=now - timedelta(hours=4)))
    deleted = forget_expired_history(short)
    assert (deleted["console sign-ins"], deleted["sign-in failures"]) == (1, 1)
    assert (count(short, ConsoleSignIn), count(short, LoginFailure)) == (1, 1)


def test_a_round_deletes_at_most_its_batch_bound(short, monkeypatch):
    monkeypatch.setattr(short, "settings", replace(short.settings, retention_batch_rows=2, retention_batches_per_round=3))
    add(short, *(seen(f"old{n}", Endpoint.CHECKOUT, 3 * DAY) for n in range(10)))
    assert forget_expired_history(short)["checkout replay records"] == 6
    assert count(short, SeenRequest) == 4
    assert forget_expired_history(short)["checkout replay records"] == 4
    assert forget_expired_history(short)["checkout replay records"] == 0


def test_what_is_kept_forever_is_never_touched(short):
    with factories.bound(short):
        factories.NotificationFactory(state="delivered")
    add(short, PostOrderRequest(orderid=123, randomkey="r"), AuditRecord(actor="ops", action="sign_in"))
    long_ago = utcnow() - 3650 * DAY
    with short.db.transaction() as session:
        for model, column in ((Payment, "created_at"), (Charge, "created_at"), (LedgerEntry, "created_at"),
                              (Notification, "created_at"), (PostOrderRequest, "created_at")):
            session.execute(update(model).values({column: long_ago}))
    kept = (Payment, Charge, LedgerEntry, Notification, PostOrderRequest, AuditRecord)
    before = [count(short, model) for model in kept]
    forget_expired_history(short)
    assert [count(short, model) for model in kept] == before == [1, 1, 1, 1, 1, 1]


def test_a_checkout_replayed_after_its_replay_record_is_forgotten_is_refused(short, client):
    body = signed_checkout(randomkey="captured-long-ago")
    post_json(client, "/checkout", body)
    with short.db.transaction() as session:
        session.execute(update(SeenRequest).values(created_at=utcnow() - 3 * DAY))
    assert forget_expired_history(short)["checkout replay records"] == 1
    elsewhere = {**body, "notificationurl": "https://attacker.example/notify"}  # the host is not signed
    for replayed in (body, elsewhere):
        answer = post_json(client, "/checkout", replayed)
        assert answer["errorcode"] == "100" and "already used" in answer["errormessage"], answer
    assert count(short, Payment) == 1


def test_a_partial_refund_replayed_years_later_moves_no_money_again(short, client, store):
    approve_all(store)
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 303
    assert short.processor.settle() >= 1
    with short.db.transaction() as session:
        transaction = session.scalars(select(Charge)).one().processor_transaction_id
    body = signed_refund(type="refund", transactionid=transaction, amounttotal=1000, is_full_refund=False)
    first = post_json(client, "/post-order", body)
    assert first["approved"] == 1, first
    with short.db.transaction() as session:
        for model in (SeenRequest, PostOrderRequest, LedgerEntry):
            session.execute(update(model).values(created_at=utcnow() - 3650 * DAY))
    forget_expired_history(short)
    assert post_json(client, "/post-order", body) == first
    with short.db.transaction() as session:
        assert session.scalar(select(Charge.refunded)) == 1000


HISTORY_ROWS = 5000
HISTORY = [  # a few thousand recent rows of each kind, and post-order replay records of long ago
    """INSERT INTO payments ({columns}) SELECT {values} FROM payments, generate_series(1, {rows}) g""",
    "INSERT INTO payment_events (payment_id, at, kind, detail) SELECT id, now(), 'page_view', '' FROM payments",
    """INSERT INTO notifications (payment_id, url, payload, state, attempts, next_attempt_at, lease,
       response_errorcode, response_errormessage, last_error, created_at, delivered_at)
       SELECT id, 'https://store.test/n', '{{}}', 'delivered', 1, now(), 1, '', '', '', now(), now() FROM payments""",
    """INSERT INTO notification_attempts (notification_id, started_at, duration_ms, response_snippet, error)
       SELECT id, now(), 5, '', '' FROM notifications""",
    """INSERT INTO seen_requests (randomkey, endpoint, digest, created_at)
       SELECT 'po' || g, 'post-order', 'd', now() - interval '3650 days' FROM generate_series(1, {rows}) g
       UNION ALL SELECT 'co' || g, 'checkout', 'd', now() FROM generate_series(1, {rows}) g""",
    """INSERT INTO console_sign_ins (token_hash, account_id, csrf, address, notice, created_at, last_seen_at)
       SELECT md5(g::text), {account}, 'c', '', '', now(), now() FROM generate_series(1, {rows}) g""",
    """INSERT INTO console_login_failures (username, address, occurred_at)
       SELECT 'ops', '192.0.2.1', now() FROM generate_series(1, {rows}) g""",
    """INSERT INTO risk_signals (at, store_key, payment_id, orderid, card_fingerprint, address, network, outcome, reason)
       SELECT now(), 'store.test', 1, g, md5(g::text), '192.0.2.1', '192.0.2.0/24', 'declined', 'card_declined'
       FROM generate_series(1, {rows}) g""",
]


@pytest.fixture
def history(services: Any) -> Any:
    """Thousands of rows of each kind, none of them past its period, and the planner's statistics of them."""
    with factories.bound(services):
        factories.PaymentFactory(state="completed")
    columns = [c.name for c in Payment.__table__.columns if c.name != "id"]
    unique = {"token": "token || g", "randomkey": "randomkey || g"}
    filled = {"columns": ", ".join(columns), "values": ", ".join(unique.get(c, c) for c in columns),
              "rows": HISTORY_ROWS, "account": account(services)}
    with services.db.transaction() as session:
        for statement in HISTORY:
            session.execute(text(statement.format(**filled)))
    with services.db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return services


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
def test_each_batch_finds_its_rows_by_index_not_by_reading_the_whole_table(services, kind, request):
    """With thousands of rows to skip, a batch walks its table's time index, never the table itself.

    Sequential scans are priced out as well: at a few thousand rows, finding the 500 chosen rows by
    reading the whole table is honestly cheaper than by their key, which stops being true long before
    a table is large enough to matter."""
    if services.db.engine.dialect.name != "postgresql":
        pytest.skip("the planner's choice is checked on PostgreSQL")
    request.getfixturevalue("history")
    statement = batch_statement(kind, services.settings, utcnow(), services.settings.retention_batch_rows)
    sql = str(statement.compile(services.db.engine, compile_kwargs={"literal_binds": True}))
    with services.db.transaction() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(session.execute(text(f"EXPLAIN {sql}")).scalars())
    assert "Seq Scan" not in plan and time_index(kind) in plan, plan


def time_index(kind: Kind) -> str:
    """The name of the index that leads with the kind's time column (after the endpoint, for replay records)."""
    column = kind.time.property.columns[0]
    indexes = sorted(column.table.indexes, key=lambda index: len(index.columns))
    return next(str(index.name) for index in indexes if list(index.columns)[-1] is column
                and all(c is column or c.name == "endpoint" for c in index.columns))


def test_the_retention_command_counts_on_a_dry_run_and_deletes_otherwise(short, cli):
    add(short, seen("old", Endpoint.CHECKOUT, 3 * DAY), seen("recent", Endpoint.CHECKOUT, DAY))
    assert "checkout replay records\t1 past its period" in cli("retention", "run", "--dry-run")
    assert count(short, SeenRequest) == 2
    assert "checkout replay records\t1 deleted" in cli("retention", "run")
    assert count(short, SeenRequest) == 1


def test_risk_signals_are_deleted_after_their_period_and_kept_before(short):
    """The risk step reads an hour of signals; past GATEWAY_RETENTION_RISK_DAYS they go."""
    now = utcnow()
    add(short, *(RiskSignal(at=now - age, store_key="store.example", payment_id=1, orderid=1,
                            card_fingerprint="f" * 64, address="192.0.2.1", network="192.0.2.0/24",
                            outcome=RiskOutcome.DECLINED, reason="card_declined")
                 for age in (4 * DAY, 2 * DAY)))
    assert forget_expired_history(short)["risk signals"] == 1
    assert count(short, RiskSignal) == 1
