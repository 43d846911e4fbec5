"""Payment search: the questions support asks ("order 1234 of this store", "card ending 4242 on Monday")."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Mapping

from ..payments import history
from ..services import Services

FIELDS = ("store", "orderid", "invoice", "transactionid", "last4", "amount", "date_from", "date_to")
MAX_FIELD = 128
LAST_DAY = date(9998, 12, 31)


class SearchError(ValueError):
    """A search field that cannot be understood; the message names it."""


@dataclass(frozen=True)
class Query:
    store: str = ""
    orderid: int | None = None
    invoice: str = ""
    transactionid: str = ""
    last4: str = ""
    amount: Decimal | None = None
    date_from: date | None = None
    date_to: date | None = None
    before: int | None = None  # keyset pagination: the last payment id of the page before

    @property
    def empty(self) -> bool:
        return self == Query()


def parse(form: Mapping[str, str]) -> Query:
    """Read the search form; every field is bounded and checked before it is converted."""
    values = {name: (form.get(name) or "").strip() for name in FIELDS}
    for name, value in values.items():
        if len(value) > MAX_FIELD:
            raise SearchError(f"{name} is longer than {MAX_FIELD} characters")
    if values["last4"] and not re.fullmatch(r"[0-9]{4}", values["last4"]):
        raise SearchError("card last four must be four digits")
    return Query(
        store=values["store"].lower(),
        orderid=_number(values["orderid"], "order id"),
        invoice=values["invoice"],
        transactionid=values["transactionid"],
        last4=values["last4"],
        amount=_amount(values["amount"]),
        date_from=_date(values["date_from"], "from date"),
        date_to=_date(values["date_to"], "to date"),
        before=_number((form.get("before") or "").strip(), "page"),
    )


def search(services: Services, query: Query) -> list[history.ListedPayment]:
    """Newest first; an empty query lists the latest payments."""
    # Amounts are typed in major units; two decimals covers the currencies stores use here.
    amount = None if query.amount is None else int(query.amount.scaleb(2))
    return history.find_payments(services, history.Criteria(
        store=query.store, orderid=query.orderid, invoice=query.invoice, processor_transaction_id=query.transactionid,
        card_last4=query.last4, amount_total=amount, created_from=query.date_from, created_to=query.date_to,
        before=query.before))


def _number(value: str, label: str) -> int | None:
    if not value:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise SearchError(f"{label} must be a whole number")
    return int(value)


def _amount(value: str) -> Decimal | None:
    if not value:
        return None
    if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,2})?", value):
        raise SearchError("amount must look like 123.45")
    return Decimal(value)


def _date(value: str, label: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise SearchError(f"{label} must be a date like 2026-11-23") from exc
    if day > LAST_DAY:  # the search runs to the end of the day: the day after must exist
        raise SearchError(f"{label} must be before the year 9999")
    return day
