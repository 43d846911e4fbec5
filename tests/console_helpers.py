"""Console accounts, sign-in and stuck payments to act on, for the console tests."""
from __future__ import annotations

import re
from typing import Any

import requests
from sqlalchemy import select, update

from gateway.console import accounts
from gateway.models import LedgerEntry, Notification, Payment, Charge
from gateway.processors.base import ProcessorUnavailable

from .flow_helpers import approve_all, open_session, pay, payment_row, store_answers
from .protocol_helpers import complete_order_answer, post_json, signed_refund

PASSWORD = "correct horse battery staple"


def make_account(services: Any, username: str, role: str) -> None:
    accounts.create(services, "test", username, PASSWORD, role)


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client: Any, username: str, password: str = PASSWORD, code: str = "") -> Any:
    page = client.get("/console/login")
    return client.post("/console/login", data={"csrf": form_csrf(page.get_data(as_text=True)), "username": username,
                                               "password": password, "code": code})


def signed_in(app: Any, username: str) -> tuple[Any, str]:
    """A test client signed in as ``username``, and its session's CSRF token."""
    client = app.test_client()
    assert sign_in(client, username).status_code == 303
    return client, form_csrf(client.get("/console/audit").get_data(as_text=True))


def dead_notification(client: Any, services: Any, store: Any, **checkout: Any) -> tuple[int, int]:
    """A paid order whose store never answered: returns (notification id, payment session id)."""
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client, **checkout)
    pay(client, token, csrf)
    payment = payment_row(services, token)
    with services.db.transaction() as session:
        session.execute(update(Notification).where(Notification.payment_id == payment.id)
                        .values(state="dead", last_error="could not connect to the store"))
        return session.scalars(select(Notification.id).where(Notification.payment_id == payment.id)).one(), payment.id


def unknown_refund(client: Any, services: Any, store: Any) -> tuple[int, int]:
    """A refund the processor may or may not have made: returns (ledger entry id, payment session id)."""
    approve_all(store)
    token, csrf = open_session(client)
    pay(client, token, csrf)
    services.processor.settle()
    with services.db.transaction() as session:
        transaction = session.scalars(select(Charge)).one()
    real_refund = services.processor.refund
    services.processor.refund = lambda *a: (_ for _ in ()).throw(ProcessorUnavailable("timeout"))
    answer = post_json(client, "/post-order", signed_refund(type="refund", transactionid=transaction.processor_transaction_id,
                                                            amounttotal=1000))
    services.processor.refund = real_refund
    assert answer["approved"] == 0
    with services.db.transaction() as session:
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.outcome == "unknown")).one()
        return entry.id, transaction.payment_id


def standing_rejected_charge(client: Any, services: Any, store: Any) -> int:
    """The store rejected the order and the reversal could not even start: returns the session id."""
    store_answers(store, complete_order_answer(0, "REJ", "out of stock"))
    token, csrf = open_session(client)
    real = services.processor.is_settled
    services.processor.is_settled = lambda *a: (_ for _ in ()).throw(ProcessorUnavailable("timeout"))
    pay(client, token, csrf)
    services.processor.is_settled = real
    payment = payment_row(services, token)
    assert payment.state == "rejected" and payment.credentials_sealed is not None
    return payment.id


def session_state(services: Any, payment_id: int) -> Payment:
    with services.db.transaction() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        return payment
