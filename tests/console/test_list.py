"""The console's payment list says what happened to the money: a voided or refunded payment is not
"completed" there, and the list reads it all in one query."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from gateway.payments import history

from .. import factories
from ..console_helpers import make_account, signed_in

COMPLETED = {"state": "completed", "credentials_sealed": None}


@pytest.fixture
def console(app, services):  # type: ignore[no-untyped-def]
    make_account(services, "victor", "viewer")
    return signed_in(app, "victor")[0]


def listed_status(console) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Each listed order's status column."""
    page = console.get("/console/payments")
    assert page.status_code == 200
    rows = re.findall(r"<tr>(.*?)</tr>", page.get_data(as_text=True), re.S)
    return {int(order): status for row in rows
            for order, status in re.findall(r"<td>(\d+)</td><td>.*<span class=\"tag\">([^<]*)</span>", row, re.S)}


def moved(orderid: int, *movements: tuple[str, int, str]) -> None:
    """A completed payment of 10.00 and these (kind, amount, outcome) movements on its charge."""
    charge = factories.paid_charge(**COMPLETED, orderid=orderid, amount_total=1000)
    for kind, amount, outcome in movements:
        factories.LedgerEntryFactory(charge=charge, kind=kind, amount=amount, outcome=outcome)


def test_fully_voided_payment_is_listed_as_voided_not_completed(console, services):
    with factories.bound(services):
        moved(1, ("void", 1000, "approved"))
    assert listed_status(console) == {1: "voided"}


def test_list_shows_refunded_and_partly_refunded(console, services):
    with factories.bound(services):
        moved(1, ("refund", 1000, "approved"))
        moved(2, ("refund", 300, "approved"))
        moved(3, ("refund", 300, "approved"), ("refund", 700, "approved"))
        moved(4, ("refund", 300, "declined"), ("void", 1000, "declined"))
        moved(5)
    assert listed_status(console) == {1: "refunded", 2: "partly refunded", 3: "refunded", 4: "completed",
                                      5: "completed"}


def test_list_shows_a_void_or_refund_nobody_knows_the_outcome_of(console, services):
    """A pending or unknown movement holds its money back: the list says it is unsettled, not done."""
    with factories.bound(services):
        moved(1, ("void", 1000, "unknown"))
        moved(2, ("refund", 300, "approved"), ("refund", 200, "pending"))
        moved(3, ("refund", 1000, "unknown"))
    assert listed_status(console) == {1: "void unsettled", 2: "refund unsettled", 3: "refund unsettled"}


def test_list_keeps_the_state_of_payments_without_money_moved_back(console, services):
    with factories.bound(services):
        factories.PaymentFactory(orderid=1)
        factories.paid_charge(orderid=2)
    assert listed_status(console) == {1: "open", 2: "approved"}


def test_list_reads_payments_and_their_money_in_one_query(services):
    with factories.bound(services):
        for orderid in range(1, 6):
            moved(orderid, ("refund", 100 * orderid, "approved"), ("void", 1000, "declined"))
    statements: list[str] = []

    def remember(_connection, _cursor, statement, *_rest):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", remember)
    try:
        listed = history.find_payments(services, history.Criteria())
    finally:
        event.remove(services.db.engine, "before_cursor_execute", remember)
    assert [row.status for row in listed] == ["partly refunded"] * 5
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 1
