"""The gateway under gunicorn on loopback, with a real store receiving notifications.

Covers what only separate processes can show: a worker killed with SIGKILL between the charge
and the notification, and concurrent requests landing on different workers.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, update

from gateway.db import Database
from gateway.models import Notification, Payment, SandboxCharge, utcnow

from .live import ROOT, Gunicorn, StoreReceiver, gateway_env, wait_for
from .protocol_helpers import CARDS, PRIVATE_KEY, md5, signed_checkout, signed_refund

pytestmark = pytest.mark.live

HOOKS = Path(__file__).with_name("crash_hooks.py")


@pytest.fixture
def db(clean_database):  # type: ignore[no-untyped-def]
    database = Database(clean_database)
    yield database
    database.dispose()


def scalar(db: Database, query):  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return session.scalar(query)


def checkout(gateway: Gunicorn, receiver: StoreReceiver, **overrides) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    body = signed_checkout(notificationurl=receiver.url, **overrides)
    answer = requests.post(gateway.url + "/checkout", json=body, timeout=10).json()
    assert answer["errormessage"] == "", answer
    page = requests.get(answer["redirecturl"], params={"paymenttoken": answer["paymenttoken"]}, timeout=10)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    return answer["paymenttoken"], csrf


def submit(gateway: Gunicorn, token: str, csrf: str, timeout: float = 30) -> requests.Response:
    form = {"paymenttoken": token, "csrf": csrf, "card_number": CARDS["visa"], "expiry": "12/39", "cvc": "123",
            "holder": "Ada Shopper"}
    return requests.post(gateway.url + "/pay/submit", data=form, allow_redirects=False, timeout=timeout)


def test_worker_killed_between_charge_and_notification(db, tmp_path):
    flag, marker = tmp_path / "pause", tmp_path / "marker"
    flag.touch()
    # A 1 s store timeout makes the delivery lease the dead worker took with the charge 12 s long.
    env = {**gateway_env(db.url, PRIVATE_KEY), "CRASH_PAUSE_FLAG": str(flag), "CRASH_MARKER": str(marker),
           "GATEWAY_NOTIFY_TIMEOUT": "1"}
    with StoreReceiver() as store, Gunicorn(env, workers=1, config=HOOKS) as gateway:
        token, csrf = checkout(gateway, store)
        shopper: list[BaseException] = []
        browser = threading.Thread(target=lambda: _expect_failure(shopper, gateway, token, csrf))
        browser.start()
        pid = int(wait_for(lambda: marker.exists() and marker.read_text(), what="worker to pause"))
        os.kill(pid, signal.SIGKILL)
        browser.join(timeout=30)
        assert shopper and isinstance(shopper[0], requests.ConnectionError)

        # The charge and its notification were committed together; nothing reached the store yet.
        assert scalar(db, select(func.count()).select_from(SandboxCharge)) == 1
        assert scalar(db, select(Payment.state)) == "approved"
        assert scalar(db, select(Notification.state)) == "pending"
        assert store.received == []

        # The dead worker's lease still runs: nobody else sends meanwhile; once it has run out, the
        # delivery worker sends the notification.
        assert "delivered 0 of 0" in gateway.cli("notifications", "work", "--once")
        assert store.received == []
        wait_for(lambda: "delivered 1 of 1" in gateway.cli("notifications", "work", "--once"), timeout=30,
                 what="the delivery worker to take over the dead worker's notification")
        gateway.cli("notifications", "work", "--once")
        [sent] = store.received
        charge_id = scalar(db, select(SandboxCharge.id))
        assert sent["transactionid"] == charge_id and sent["approved"] == 1
        assert sent["signature"] == md5(sent["randomkey"], PRIVATE_KEY, 123, "AB-12234", charge_id)
        assert scalar(db, select(func.count()).select_from(SandboxCharge)) == 1
        assert scalar(db, select(Payment.state)) == "completed"

        # The shopper reloads the page on a restarted worker and is sent back to the store.
        back = requests.get(gateway.url + "/pay/status", params={"paymenttoken": token}, allow_redirects=False, timeout=10)
        assert back.status_code == 303 and back.headers["Location"] == signed_checkout()["returnurl"]


def _expect_failure(sink: list[BaseException], gateway: Gunicorn, token: str, csrf: str) -> None:
    try:
        submit(gateway, token, csrf)
    except requests.RequestException as exc:
        sink.append(exc)


def test_store_answering_processed_zero_voids_across_processes(db):
    with StoreReceiver() as store, Gunicorn(gateway_env(db.url, PRIVATE_KEY)) as gateway:
        store.answer = {"processed": 0, "errorcode": "DECLINED_BY_STORE", "errormessage": "order cancelled"}
        token, csrf = checkout(gateway, store)
        response = submit(gateway, token, csrf)
        assert response.status_code == 303 and response.headers["Location"].endswith("error=DECLINED_BY_STORE")
        assert scalar(db, select(SandboxCharge.voided)) is True
        assert len(store.received) == 1


def test_double_submit_on_two_workers_charges_once(db):
    with StoreReceiver() as store, Gunicorn(gateway_env(db.url, PRIVATE_KEY), workers=3) as gateway:
        token, csrf = checkout(gateway, store)
        codes: list[int] = []
        start = threading.Barrier(4)

        def click() -> None:
            start.wait()
            codes.append(submit(gateway, token, csrf).status_code)

        clicks = [threading.Thread(target=click) for _ in range(4)]
        for thread in clicks:
            thread.start()
        for thread in clicks:
            thread.join()
        assert scalar(db, select(func.count()).select_from(SandboxCharge)) == 1
        assert len(store.received) == 1
        assert 303 in codes


def test_concurrent_refunds_on_several_workers_never_exceed_the_charge(db):
    with StoreReceiver() as store, Gunicorn(gateway_env(db.url, PRIVATE_KEY), workers=3) as gateway:
        token, csrf = checkout(gateway, store)
        assert submit(gateway, token, csrf).status_code == 303
        transactionid = store.received[0]["transactionid"]
        assert "settled 1" in gateway.cli("sandbox", "settle")
        start = threading.Barrier(8)
        approved: list[int] = []

        def refund(index: int) -> None:
            body = signed_refund(type="refund", transactionid=transactionid, amounttotal=4000,
                                 is_full_refund=False, randomkey=f"k{index}")
            start.wait()
            approved.append(requests.post(gateway.url + "/post-order", json=body, timeout=30).json()["approved"])

        threads = [threading.Thread(target=refund, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(approved) == 3  # 3 x 4000 fit in 12312; the other five are refused
        assert scalar(db, select(SandboxCharge.refunded)) == 12000


def test_two_worker_processes_racing_deliver_each_notification_once(db):
    """The store is down while six orders are paid; then two worker processes run at the same time."""
    with StoreReceiver() as store, Gunicorn(gateway_env(db.url, PRIVATE_KEY)) as gateway:
        store.answer = 503
        for orderid in range(1, 7):
            token, csrf = checkout(gateway, store, orderid=orderid)
            assert submit(gateway, token, csrf).status_code == 202
        store.answer = {"processed": 1, "errorcode": "", "errormessage": ""}
        with db.transaction() as session:
            session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        workers = [subprocess.Popen([sys.executable, "-m", "gateway.cli", "notifications", "work", "--once", "--batch", "2"],
                                    cwd=ROOT, env=gateway.env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [worker.communicate(timeout=60)[0] for worker in workers]
        assert all(worker.returncode == 0 for worker in workers)
        gateway.cli("notifications", "work", "--once", "--batch", "10")
        assert sorted(sent["orderid"] for sent in store.received) == [1, 2, 3, 4, 5, 6], outputs
        assert scalar(db, select(func.count()).select_from(Notification).where(Notification.state == "delivered")) == 6
