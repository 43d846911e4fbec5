"""Durable delivery: the outbox survives an unreachable store and racing workers deliver once."""
from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from gateway import create_app
from gateway.config import ConfigError
from gateway.jobs.rounds import run_once
from gateway.models import LedgerEntry, Notification, NotificationAttempt, Payment, SandboxCharge, utcnow
from gateway.notifications import outbox
from gateway.notifications.client import StoreClient, check_destination
from gateway.notifications.exchange import UnsafeDestination
from gateway.payments.completion import deliver_claimed

from ..flow_helpers import notifications_sent, open_session, pay, payment_row, store_answers
from ..protocol_helpers import NOTIFY_URL, complete_order_answer
from .stores import OK_ANSWER, RawStore, http_answer


def make_due(services) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def notification(services) -> Notification:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalars(select(Notification)).one()


def test_store_down_for_a_while_then_up(client, services, store):
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 202
    store.replace("POST", NOTIFY_URL, status=503, body="maintenance")
    make_due(services)
    assert run_once(services).delivered == 0
    failed = notification(services)
    assert (failed.state, failed.attempts) == ("pending", 2)
    assert "503" in failed.last_error
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(1))
    assert run_once(services).attempted == 0  # backoff: not due yet
    make_due(services)
    assert run_once(services).delivered == 1
    assert notification(services).state == "delivered"
    assert payment_row(services, token).state == "completed"
    with services.db.transaction() as session:
        attempts = session.scalars(select(NotificationAttempt).order_by(NotificationAttempt.id)).all()
    assert [a.http_status for a in attempts] == [None, 503, 200]
    assert attempts[1].response_snippet == "maintenance" and attempts[0].error == "could not connect to the store"
    assert all(a.duration_ms >= 0 for a in attempts)
    # The shopper's waiting page now moves on.
    assert client.get("/pay/status", query_string={"paymenttoken": token}).status_code == 303


def test_gives_up_after_the_configured_attempts(client, services, store):
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client)
    pay(client, token, csrf)
    for _ in range(services.settings.notify_max_attempts):
        make_due(services)
        run_once(services)
    row = notification(services)
    assert (row.state, row.attempts) == ("dead", services.settings.notify_max_attempts)
    make_due(services)
    assert run_once(services).attempted == 0


def test_processed_zero_from_the_worker_voids_exactly_once(client, services, store):
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client)
    pay(client, token, csrf)
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(0, "REJ", "no"))
    make_due(services)
    run_once(services)
    run_once(services)
    with services.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "void")) == 1
        assert session.scalars(select(SandboxCharge)).one().voided
    assert payment_row(services, token).state == "rejected"
    assert payment_row(services, token).credentials_sealed is None


def test_void_interrupted_mid_call_is_resumed_once_it_is_stale(client, services, store):
    store_answers(store, complete_order_answer(0, "REJ", "no"))
    token, csrf = open_session(client)
    real_void = services.processor.void
    services.processor.void = lambda *a: (_ for _ in ()).throw(SystemExit)  # type: ignore[method-assign]
    with pytest.raises(SystemExit):  # the process dies while the void is on the wire
        pay(client, token, csrf)
    services.processor.void = real_void  # type: ignore[method-assign]
    with services.db.transaction() as session:  # a dead process leaves its reservation pending
        assert session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "void")).one().outcome == "pending"
    run_once(services)  # too fresh: it may still be in flight somewhere
    with services.db.transaction() as session:
        assert session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "void")).one().outcome == "pending"
        session.execute(update(LedgerEntry).values(created_at=utcnow() - timedelta(minutes=5)))
    run_once(services)
    run_once(services)
    with services.db.transaction() as session:
        [void] = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "void")).all()
        assert void.outcome == "approved"
        assert session.scalars(select(SandboxCharge)).one().voided
    assert payment_row(services, token).credentials_sealed is None


def test_interrupted_charge_is_recorded_once_the_processor_confirms_it(client, services, store):
    store_answers(store, complete_order_answer(1))
    token, csrf = open_session(client)
    real_sale = services.processor.sale

    def charge_then_die(request):  # type: ignore[no-untyped-def]
        real_sale(request)
        raise SystemExit  # killed after the processor charged, before we recorded it

    services.processor.sale = charge_then_die  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        pay(client, token, csrf)
    services.processor.sale = real_sale  # type: ignore[method-assign]
    assert payment_row(services, token).state == "authorizing"
    assert run_once(services).recovered == 0  # too fresh to call stale
    with services.db.transaction() as session:
        session.execute(update(Payment).values(updated_at=utcnow() - timedelta(minutes=5)))
    run_once(services)
    assert payment_row(services, token).state == "completed"
    [sent] = notifications_sent(store)
    with services.db.transaction() as session:
        charge = session.scalars(select(SandboxCharge)).one()
    assert sent["transactionid"] == charge.id


def test_interrupted_attempt_that_never_charged_reopens_the_session(client, services, store):
    token, csrf = open_session(client)
    services.processor.sale = lambda request: (_ for _ in ()).throw(SystemExit)  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        pay(client, token, csrf)
    with services.db.transaction() as session:
        session.execute(update(Payment).values(updated_at=utcnow() - timedelta(minutes=5)))
    run_once(services)
    assert payment_row(services, token).state == "open"
    assert payment_row(services, token).decline_count == 0


def test_two_workers_racing_deliver_each_notification_once(app, services, store):
    store_answers(store, requests.ConnectionError("down"))
    client = app.test_client()
    for orderid in range(1, 7):
        token, csrf = open_session(client, orderid=orderid)
        pay(client, token, csrf)
    store.replace("POST", NOTIFY_URL, json=complete_order_answer(1))
    make_due(services)
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        run_once(services, batch=3)
        run_once(services, batch=3)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    delivered = [sent["orderid"] for sent in notifications_sent(store)[6:]]
    assert sorted(delivered) == [1, 2, 3, 4, 5, 6]


def test_claim_is_exclusive(client, services, store):
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client)
    pay(client, token, csrf)
    make_due(services)
    row = notification(services)
    assert services.outbox.claim(row.id) is not None
    assert services.outbox.claim(row.id) is None
    assert services.outbox.claim_due(10) == []


def test_backoff_grows_and_is_capped():
    rng = random.Random(7)
    ceilings = [outbox.backoff(n, rng) for n in (1, 2, 3, 30)]
    assert timedelta(seconds=2.5) <= ceilings[0] <= timedelta(seconds=5)
    assert timedelta(seconds=5) <= ceilings[1] <= timedelta(seconds=10)
    assert timedelta(seconds=10) <= ceilings[2] <= timedelta(seconds=20)
    assert ceilings[3] <= timedelta(hours=1)


@pytest.mark.parametrize(
    "url, https, private, ok",
    [
        ("http://127.0.0.1/notify", False, False, False),
        ("http://localhost/notify", False, False, False),
        ("http://10.1.2.3/notify", False, False, False),
        ("http://169.254.169.254/latest", False, False, False),
        ("http://[::1]/notify", False, False, False),
        ("http://store.example/notify", True, True, False),
        ("http://127.0.0.1/notify", False, True, True),
        ("https://8.8.8.8/notify", True, False, True),
        ("file:///etc/passwd", False, True, False),
    ],
)
def test_outbound_destinations_are_checked(url, https, private, ok):
    if ok:
        check_destination(url, require_https=https, allow_private=private)
    else:
        with pytest.raises(UnsafeDestination):
            check_destination(url, require_https=https, allow_private=private)


def test_oversized_store_answer_is_not_read_whole(client, services, store):
    store_answers(store, {"processed": 1, "pad": "x" * 200_000})
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 202
    assert "larger than" in notification(services).last_error


def test_abandoned_sessions_lose_their_merchant_credentials(client, services):
    token, _ = open_session(client)
    fresh, _ = open_session(client, orderid=124)
    with services.db.transaction() as session:
        session.execute(update(Payment).where(Payment.token == token)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    run_once(services)
    assert payment_row(services, token).credentials_sealed is None
    assert payment_row(services, fresh).credentials_sealed is not None


def test_case_6_a_lease_shorter_than_one_delivery_is_refused_at_start_up(services):
    client = StoreClient(timeout=10, require_https=False, allow_private=True)
    with pytest.raises(ConfigError, match="does not outlast"):
        outbox.Outbox(services.db, client, "key", lease=timedelta(seconds=12), max_attempts=3)


@pytest.mark.live
def test_case_6_a_lease_nearly_over_is_renewed_so_no_second_worker_posts_while_the_store_answers(settings):
    """The last notification of a claimed batch reaches its turn with little of its lease left: while
    a store trickles its answer, another worker must not be able to claim it and post it again."""
    app = create_app(dataclasses.replace(settings, notify_timeout_seconds=1.5))
    services = app.extensions["gateway"]
    try:
        with RawStore(http_answer(b"down", "503 Service Unavailable")) as store:
            token, csrf = open_session(app.test_client(), notificationurl=store.url)
            pay(app.test_client(), token, csrf)
            store.answer, store.trickle = http_answer(OK_ANSWER), 0.5
            make_due(services)
            [claimed] = services.outbox.claim_due(10)
            almost_over = utcnow() + timedelta(seconds=1)
            with services.db.transaction() as session:
                session.execute(update(Notification).values(claimed_until=almost_over))
            claimed.claimed_until = almost_over
            delivering = threading.Thread(target=deliver_claimed, args=(services, claimed))
            delivering.start()
            time.sleep(1.2)  # past the lease as it was claimed, within the 1.5 s delivery
            assert services.outbox.claim(claimed.id) is None
            delivering.join()
        assert len(store.received) == 2  # the shopper's attempt and this one, not a third
        row = notification(services)
        assert (row.state, row.attempts, row.last_error) == ("pending", 2, "store did not answer in time")
    finally:
        services.db.dispose()
