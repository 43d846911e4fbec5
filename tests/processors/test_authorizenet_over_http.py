"""The gateway under gunicorn, configured for Authorize.Net (GATEWAY_PROCESSOR=authorizenet) and
pointed at the strict stand-in on a loopback port: for each odd answer Authorize.Net can give, a
shopper checks out and pays over HTTP. Whatever the answer, no shopper sees a 500 or is told
"declined" while the card was charged, no payment waits in `authorizing` without a recorded reason,
and no charge but this attempt's own is recorded, by the payment page or by the crash lookup that
settles an unknown outcome afterwards."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import select

from gateway import create_app
from gateway.config import load_settings
from gateway.db import Database
from gateway.errorcodes import ErrorCode
from gateway.models import Charge, Payment, PaymentEvent, PaymentState
from gateway.payments.recovery import recover_stale_authorizations
from gateway.services import Services

from ..flow_helpers import wipe_database
from ..live import Gunicorn, StoreReceiver, gateway_env
from ..protocol_helpers import PRIVATE_KEY, signed_checkout
from .fake_authorizenet import TRIGGER_CARD, Account, FakeAuthorizeNet, Fault

pytestmark = [pytest.mark.live, pytest.mark.module_servers]

VISA, DECLINE = "4242424242424242", "4000000000000002"
CHARGED, DECLINED, UNKNOWN, REFUSED = "charged", "declined", "unknown", "refused"
LIST_DELAY = timedelta(seconds=0.5)  # before a new transaction shows in Authorize.Net's lists


@dataclass(frozen=True)
class Case:
    """One odd answer: the faults scripted for it, and what the shopper may end with."""

    name: str
    faults: tuple[tuple[str, Fault], ...] = ()
    card: str = VISA
    amount: int = 5000
    login: str = "user1"
    outcomes: tuple[str, ...] = (CHARGED,)
    decoy: bool = False  # the same order was charged earlier, on another card: never this attempt's charge


CASES = [
    Case("approved"),
    Case("declined", card=DECLINE, outcomes=(DECLINED,)),
    Case("5xx, then the resend goes through", (("sale", Fault.server_error()),)),
    Case("5xx twice", (("sale", Fault.server_error()), ("sale", Fault.server_error())), outcomes=(UNKNOWN,)),
    Case("5xx twice, the order charged earlier on another card", (("sale", Fault.server_error()),
         ("sale", Fault.server_error())), outcomes=(UNKNOWN,), decoy=True),
    Case("5xx after charging, twice", (("sale", Fault.server_error(after=True)), ("sale", Fault.server_error())),
         outcomes=(UNKNOWN,)),
    Case("body truncated after charging", (("sale", Fault.truncated()),), outcomes=(CHARGED, UNKNOWN)),
    Case("malformed JSON after charging", (("sale", Fault.malformed()),), outcomes=(CHARGED, UNKNOWN)),
    Case("{} after charging", (("sale", Fault.empty_object()),), outcomes=(CHARGED, UNKNOWN)),
    Case("slow answer after charging", (("sale", Fault.slow(1.5)),), outcomes=(CHARGED, UNKNOWN)),
    Case("truncated, then duplicate 11 without transId",
         (("sale", Fault.truncated()), ("sale", Fault.duplicate_without_trans_id())), outcomes=(UNKNOWN,)),
    Case("truncated, then the duplicate cannot be checked",
         (("sale", Fault.truncated()), ("details", Fault.server_error()), ("details", Fault.server_error())),
         outcomes=(UNKNOWN,)),
    Case("held for review (sandbox trigger 252)", card=TRIGGER_CARD, amount=25200, outcomes=(DECLINED,)),
    Case("held, and the decline of the hold fails", (("sale", Fault.held()), ("held", Fault.server_error())),
         outcomes=(UNKNOWN,)),
    Case("partial authorization not allowed (trigger 295)", card=TRIGGER_CARD, amount=29500, outcomes=(DECLINED,)),
    Case("credentials E00005", (("sale", Fault.credentials("E00005")),), outcomes=(REFUSED,)),
    Case("credentials E00006", (("sale", Fault.credentials("E00006")),), outcomes=(REFUSED,)),
    Case("credentials E00010", (("sale", Fault.credentials("E00010")),), outcomes=(REFUSED,)),
    Case("wrong transaction key", login="user1-wrong-key", outcomes=(REFUSED,)),
    Case("account in Test Mode (transId 0)", login="testmode", outcomes=(REFUSED,)),
]
LOGINS = {"user1": ("user1", "password1"), "user1-wrong-key": ("user1", "not-the-key"),
          "testmode": ("testmode", "password1")}


@dataclass
class World:
    fake: FakeAuthorizeNet
    gateway: Gunicorn
    store: StoreReceiver
    db: Database
    worker: Services  # the delivery worker's side: the crash lookup of payments left `authorizing`


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[World]:
    """One stand-in, one store and one gateway process for every case (each case its own order)."""
    wipe_database(database_url)
    fake = FakeAuthorizeNet(accounts={"user1": Account("password1"), "testmode": Account("password1", test_mode=True)},
                            list_delay=LIST_DELAY)
    db = Database(database_url)
    with fake.serve() as url, StoreReceiver() as store:
        env = {**gateway_env(database_url, PRIVATE_KEY), "GATEWAY_PROCESSOR": "authorizenet",
               "AUTHORIZENET_URL": url, "GATEWAY_PROCESSOR_TIMEOUT": "1",
               "GATEWAY_LIMIT_CARD_PER_ADDRESS": "1000 per minute"}  # every case pays from 127.0.0.1
        worker = create_app(load_settings(env, database_url=database_url, private_key=PRIVATE_KEY,
                                          public_url="https://gateway.test"))
        with Gunicorn(env, workers=2, quick_stop=True) as gateway:
            yield World(fake, gateway, store, db, worker.extensions["gateway"])
        worker.extensions["gateway"].db.dispose()
    db.dispose()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_no_odd_answer_gives_a_500_a_false_decline_or_a_silent_authorizing(world: World, case: Case) -> None:
    orderid = 9000 + CASES.index(case)
    invoice = f"AN-{orderid}"
    if case.decoy:
        world.fake.record_sale("user1", "5555555555554444", Decimal(case.amount) / 100, invoice)
    for operation, fault in case.faults:
        world.fake.script(operation, fault)
    token, csrf = _checkout(world, case, orderid, invoice)
    submitted = requests.post(world.gateway.url + "/pay/submit", allow_redirects=False, timeout=30, data={
        "paymenttoken": token, "csrf": csrf, "card_number": case.card, "expiry": "12/39", "cvc": "123",
        "holder": "Ada Shopper"})
    page = requests.get(world.gateway.url + "/pay", params={"paymenttoken": token}, allow_redirects=False, timeout=10)
    world.fake.faults.clear()
    assert submitted.status_code < 500 and page.status_code < 500, (submitted.status_code, page.status_code)
    outcome = _check(world, token, invoice, case.card)
    assert outcome in case.outcomes, outcome
    if outcome == UNKNOWN:
        time.sleep(LIST_DELAY.total_seconds())
        recover_stale_authorizations(world.worker, older_than=timedelta(0))
        _check(world, token, invoice, case.card)


def _check(world: World, token: str, invoice: str, card: str) -> str:
    """The payment's outcome, after checking it against what the stand-in did."""
    payment, charge, reasons = _record(world.db, token)
    ours = [t.trans_id for t in world.fake.charges() if t.invoice == invoice and t.last4 == card[-4:]]
    outcome = _outcome(payment)
    if outcome == CHARGED:
        assert charge is not None and [charge.processor_transaction_id] == ours, "recorded a charge not its own"
    else:
        assert charge is None and (outcome == UNKNOWN or not ours), ("declined, yet the card was charged", payment.state)
    if outcome == UNKNOWN:
        assert payment.attention or any(reasons), "left authorizing without a reason"
    return outcome


def _checkout(world: World, case: Case, orderid: int, invoice: str) -> tuple[str, str]:
    username, password = LOGINS[case.login]
    body = signed_checkout(notificationurl=world.store.url, orderid=orderid, invoice=invoice,
                           amounttotal=case.amount, username=username, password=password)
    answer = requests.post(world.gateway.url + "/checkout", json=body, timeout=10).json()
    assert answer["errormessage"] == "", answer
    page = requests.get(answer["redirecturl"], params={"paymenttoken": answer["paymenttoken"]}, timeout=10)
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, page.text[:500]
    return answer["paymenttoken"], match.group(1)


def _record(db: Database, token: str) -> tuple[Payment, Charge | None, list[str]]:
    """The payment, its charge, and the reasons recorded for an unknown outcome."""
    with db.transaction() as session:
        payment = session.scalars(select(Payment).where(Payment.token == token)).one()
        charge = session.scalars(select(Charge).where(Charge.payment_id == payment.id)).first()
        reasons = list(session.scalars(select(PaymentEvent.detail).where(
            PaymentEvent.payment_id == payment.id, PaymentEvent.kind == "charge_unknown")))
        session.expunge_all()
        return payment, charge, reasons


def _outcome(payment: Any) -> str:
    if payment.state in (PaymentState.APPROVED, PaymentState.COMPLETED):
        return CHARGED
    if payment.state == PaymentState.AUTHORIZING:
        return UNKNOWN
    if payment.state == PaymentState.FAILED and payment.error_code == ErrorCode.MERCHANT_AUTHENTICATION:
        return REFUSED  # the merchant's settings, not the card: the gateway gives up at once
    return DECLINED
