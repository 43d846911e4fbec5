"""Finding payments: pages follow one another by keyset (created_at, id), newest first."""
from __future__ import annotations

from datetime import timedelta

from gateway.models import utcnow
from gateway.payments import history

from .. import factories


def test_the_next_page_starts_after_the_last_listed_payment_even_within_one_instant(services):
    now = utcnow()
    with factories.bound(services):
        # two share one instant (the id breaks the tie); one was written later but created earlier
        orders = {orderid: factories.PaymentFactory(orderid=orderid, created_at=now - timedelta(minutes=minutes)).id
                  for orderid, minutes in ((1, 30), (2, 10), (3, 10), (4, 0), (5, 20))}
    pages, before = [], None
    while True:
        page = [row.payment.orderid for row in
                history.find_payments(services, history.Criteria(before=before), limit=2)]
        if not page:
            break
        pages.append(page)
        before = orders[page[-1]]
    assert pages == [[4, 3], [2, 5], [1]]


def test_a_page_of_a_search_keeps_its_criteria(services):
    with factories.bound(services):
        ids = [factories.PaymentFactory(orderid=orderid, amount_total=amount).id
               for orderid, amount in ((1, 500), (2, 700), (3, 500), (4, 500))]
    second = history.find_payments(services, history.Criteria(amount_total=500, before=ids[3]), limit=1)
    assert [row.payment.orderid for row in second] == [3]


def test_each_store_is_listed_once_with_its_newest_payment(services):
    now = utcnow()
    with factories.bound(services):
        for orderid, url, minutes in ((1, "https://a.example/n", 30), (2, "https://b.example/n", 20),
                                      (3, "https://a.example/n", 10), (4, "https://c.example/n", 40)):
            factories.PaymentFactory(orderid=orderid, notification_url=url, created_at=now - timedelta(minutes=minutes))
    latest = history.latest_payment_by_store(services)
    assert {key: round((now - at).total_seconds() / 60) for key, at in latest.items()} == {
        "a.example": 10, "b.example": 20, "c.example": 40}
    assert [p.orderid for p in history.recent_payments(services, "a.example")] == [3, 1]
