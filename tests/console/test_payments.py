"""Answering "order 1234 was charged but shows unpaid": search and one payment's timeline."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from gateway.models import Charge, Notification, PaymentEvent, utcnow

from .. import factories
from ..console_helpers import make_account, signed_in
from ..flow_helpers import open_session, pay, payment_row, store_answers
from ..protocol_helpers import CARDS, complete_order_answer, post_json, signed_refund

OTHER_STORE = "https://other-shop.example/notify"


@pytest.fixture
def console(app, services):  # type: ignore[no-untyped-def]
    make_account(services, "victor", "viewer")
    return signed_in(app, "victor")[0]


@pytest.fixture
def paid(services):  # type: ignore[no-untyped-def]
    """Two paid orders at two stores, and an unpaid one (written by the factories)."""
    with factories.bound(services):
        completed = {"state": "completed", "credentials_sealed": None}
        # the first was paid last week
        first = factories.paid_charge(**completed, created_at=utcnow() - timedelta(days=7)).payment
        second = factories.paid_charge(**completed, orderid=777, invoice="INV-777", amount_total=5000,
                                       notification_url=OTHER_STORE, card_brand="mastercard", card_last4="4444").payment
        factories.PaymentFactory(orderid=888, invoice="INV-888", amount_total=999)
    return first, second


def orders_found(console, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    page = console.get("/console/payments?" + query)
    assert page.status_code == 200
    return re.findall(r"<td>(\d+)</td><td>[^<]*</td>\s*<td>\$", page.get_data(as_text=True))


def test_search_by_each_field(console, services, paid):
    first, second = paid
    with services.db.transaction() as session:
        txn = session.scalars(select(Charge).where(Charge.payment_id == second.id)).one().processor_transaction_id
    today = utcnow().date().isoformat()
    assert orders_found(console, "") == ["888", "777", "123"]
    assert orders_found(console, "store=other-shop") == ["777"]
    assert orders_found(console, "orderid=123") == ["123"]
    assert orders_found(console, "invoice=INV-888") == ["888"]
    assert orders_found(console, f"transactionid={txn}") == ["777"]
    assert orders_found(console, "last4=4444") == ["777"]
    assert orders_found(console, "last4=4242") == ["123"]
    assert orders_found(console, "amount=50.00") == ["777"]
    assert orders_found(console, "amount=123.12") == ["123"]
    assert orders_found(console, f"date_from={today}") == ["888", "777"]
    assert orders_found(console, f"date_to={(utcnow() - timedelta(days=1)).date().isoformat()}") == ["123"]
    assert orders_found(console, "store=example-com&amount=9.99") == ["888"]
    assert orders_found(console, "orderid=999999") == []


def test_timeline_tells_the_whole_story_in_order(client, console, services, store):
    store_answers(store, requests.ConnectionError("down"), complete_order_answer(1))
    token, csrf = open_session(client)
    pay(client, token, csrf, number=CARDS["decline"])
    pay(client, token, csrf)  # approved; the store is down at first
    client.get("/pay/status", query_string={"paymenttoken": token})
    payment = payment_row(services, token)
    with services.db.transaction() as session:  # the retry falls due
        session.execute(update(Notification).values(next_attempt_at=utcnow()))
    client.get("/pay/status", query_string={"paymenttoken": token})
    services.processor.settle()
    with services.db.transaction() as session:
        txn = session.scalars(select(Charge)).one().processor_transaction_id
    assert post_json(client, "/post-order", signed_refund(type="refund", transactionid=txn, amounttotal=312))["approved"] == 1

    page = console.get(f"/console/payments/{payment.id}").get_data(as_text=True)
    kinds = re.findall(r'data-kind="(\w+)"', page)
    assert kinds[0] == "checkout" and kinds.count("page_view") >= 1
    assert kinds.index("charge_declined") < kinds.index("ledger_sale") < kinds.index("ledger_refund")
    assert kinds.count("notification_attempt") == 2
    assert "card_declined" in page and "could not connect to the store" in page
    assert "Sale approved" in page and "Refund approved" in page and "$3.12" in page
    assert "ms</dd>" in page and "processed" in page
    assert "password1" not in page and "user1" not in page  # merchant credentials are masked
    assert "4242424242424242" not in page and "visa ending 4242" in page


def test_unknown_payment_is_a_404(console):
    assert console.get("/console/payments/424242").status_code == 404


def test_reloading_the_payment_page_cannot_grow_the_timeline(client, services):
    token, _ = open_session(client)
    for _ in range(5):
        client.get("/pay", query_string={"paymenttoken": token})
    with services.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PaymentEvent)) == 1  # the first view


def test_timeline_shows_the_avs_and_cvv_results_of_an_approval(client, console, services, store):
    store_answers(store, complete_order_answer(1))
    token, csrf = open_session(client)
    pay(client, token, csrf)
    page = console.get(f"/console/payments/{payment_row(services, token).id}").get_data(as_text=True)
    sale = page[page.index('data-kind="ledger_sale"'):]
    sale = sale[:sale.index("</li>")]
    assert "<dt>address check (AVS)</dt><dd>Y: street and postcode match</dd>" in sale
    assert "<dt>security code check (CVV)</dt><dd>M: match</dd>" in sale


def test_timeline_says_when_the_processor_reported_no_avs_or_an_unknown_cvv(console, services):
    with factories.bound(services):
        charge = factories.paid_charge()
    with services.db.transaction() as session:
        session.execute(update(Charge).where(Charge.id == charge.id).values(avs_result="", cvv_result="Q"))
    page = console.get(f"/console/payments/{charge.payment_id}").get_data(as_text=True)
    assert "<dt>address check (AVS)</dt><dd>not reported</dd>" in page
    assert "<dt>security code check (CVV)</dt><dd>Q: a code this console does not know</dd>" in page


def test_the_payments_list_links_to_older_payments_past_the_newest_hundred(console, services):
    with factories.bound(services):
        for orderid in range(1, 103):
            factories.PaymentFactory(orderid=orderid, amount_total=700 if orderid % 2 else 800,
                                     created_at=utcnow() - timedelta(minutes=200 - orderid))
    first = console.get("/console/payments").get_data(as_text=True)
    older = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert older is not None and "before=" in older.group(1)
    rest = console.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r"<td>(\d+)</td><td>[^<]*</td>\s*<td>\$", rest.get_data(as_text=True)) == ["2", "1"]
    assert 'rel="next"' not in rest.get_data(as_text=True)
    assert orders_found(console, "amount=7.00&before=" + older.group(1).rsplit("before=", 1)[1]) == ["1"]


def test_a_page_position_that_is_not_a_payment_id_is_refused(console):
    page = console.get("/console/payments?before=12abc")
    assert page.status_code == 400 and "page must be a whole number" in page.get_data(as_text=True)
