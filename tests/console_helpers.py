"""Console accounts, sign-in and stuck payments to act on, for the console tests."""
from __future__ import annotations

import re
from typing import Any

from gateway.console import accounts
from gateway.models import Payment, SandboxCharge, utcnow
from gateway.processors.base import ProcessorUnavailable

from . import factories
from .flow_helpers import open_session, pay, payment_row, store_answers
from .protocol_helpers import complete_order_answer

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


def dead_notification(client: Any, services: Any, store: Any) -> tuple[int, int]:
    """A paid order whose store never answered: returns (notification id, payment id).

    Written by the factories (tests/factories.py) as the pay path leaves it; test_delivery covers
    how a notification comes to die."""
    with factories.bound(services):
        notification = factories.NotificationFactory(dead=True)
        return notification.id, notification.payment_id


def unknown_refund(client: Any, services: Any, store: Any) -> tuple[int, int]:
    """A refund the processor may or may not have made: returns (ledger entry id, payment id).

    Written by the factories as the refund path leaves it (test_operations drives it through /post-order):
    a completed, settled sale and a $10.00 refund whose outcome is unknown."""
    with factories.bound(services):
        charge = factories.paid_charge(state="completed", credentials_sealed=None)
        session = factories._session()
        session.get(SandboxCharge, charge.processor_transaction_id).settles_at = utcnow()
        factories.NotificationFactory(charge=charge, state="delivered", attempts=1, lease=1, processed=True,
                                      delivered_at=utcnow())
        entry = factories.LedgerEntryFactory(charge=charge, kind="refund", amount=1000, outcome="unknown",
                                             processor_ref=None, message="timeout", request_key="refund321123xyz")
        return entry.id, charge.payment_id


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
