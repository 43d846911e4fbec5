"""Drive a shopper through the hosted page with Flask's test client."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from gateway.db import make_engine
from gateway.models import Base, Payment

from .protocol_helpers import NOTIFY_URL, card_form, complete_order_answer, csrf_from, post_json, signed_checkout


def open_session(client: Any, **overrides: Any) -> tuple[str, str]:
    """Check out and land on the payment page; returns (paymenttoken, csrf)."""
    answer = post_json(client, "/checkout", signed_checkout(**overrides))
    token = answer["paymenttoken"]
    page = client.get("/pay", query_string={"paymenttoken": token})
    assert page.status_code == 200
    return token, csrf_from(page.get_data(as_text=True))


def pay(client: Any, token: str, csrf: str, number: str | None = None, **fields: str) -> Any:
    form = card_form(token, csrf, **({"number": number} if number else {}), **fields)
    return client.post("/pay/submit", data=form)


def store_answers(store: Any, *answers: dict[str, Any] | Exception, url: str = NOTIFY_URL) -> None:
    for answer in answers:
        if isinstance(answer, Exception):
            store.add("POST", url, body=answer)
        else:
            store.add("POST", url, json=answer)


def approve_all(store: Any) -> None:
    store_answers(store, complete_order_answer(1))


def notifications_sent(store: Any) -> list[dict[str, Any]]:
    return [json.loads(call.request.body) for call in store.calls]


def payment_row(services: Any, token: str) -> Payment:
    with services.db.transaction() as session:
        return session.scalars(select(Payment).where(Payment.token == token)).one()


def wipe_database(url: str) -> None:
    """Empty every table (children first), keeping the migrated schema."""
    engine = make_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()
