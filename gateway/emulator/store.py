"""The emulated store's memory: orders and a log of every exchange. One process, guarded by a lock."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class Order:
    orderid: int
    invoice: str
    currency: str
    amounttotal: int
    items: list[dict[str, Any]]
    answer_processed: bool = True  # how the store answers the CompleteOrderRequest
    status: str = "awaiting payment"
    transactionid: str = ""
    refunded: int = 0
    comments: list[str] = field(default_factory=list)


@dataclass
class Exchange:
    at: str
    direction: str
    url: str
    request: dict[str, Any] | None
    response: Any
    signature: str  # what the signature check found


class Store:
    def __init__(self, first_orderid: int = 1001) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(first_orderid)
        self.orders: dict[int, Order] = {}
        self.log: list[Exchange] = []

    def new_order(self, currency: str, amounttotal: int, items: list[dict[str, Any]], answer_processed: bool) -> Order:
        with self._lock:
            orderid = next(self._ids)
            order = Order(orderid, f"AB-{orderid}", currency, amounttotal, items, answer_processed)
            self.orders[orderid] = order
            return order

    def record(self, direction: str, url: str, request: dict[str, Any] | None, response: Any, signature: str) -> None:
        with self._lock:
            at = datetime.now(timezone.utc).strftime("%H:%M:%S")
            self.log.insert(0, Exchange(at, direction, url, mask(request), mask(response), signature))

    def order(self, orderid: object) -> Order | None:
        try:
            return self.orders.get(int(str(orderid)))
        except ValueError:
            return None


def mask(body: Any) -> Any:
    """Credentials never appear in the log page."""
    if not isinstance(body, dict):
        return body
    return {key: ("(hidden)" if key == "password" else value) for key, value in body.items()}
