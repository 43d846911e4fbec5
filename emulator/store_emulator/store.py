"""The emulated store's memory: orders, merchant credentials and a log of every exchange.

Everything lives in this process, behind one lock, so the emulator runs as ONE process
(`gunicorn -w 1 --threads 4`): a second worker would hold a different set of orders.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gateway.protocol.signing import wire_text

from .cart import CURRENCY, Cart

AWAITING, CHECKOUT_ERROR = "awaiting payment", "checkout error"
DECLINED, REJECTED = "payment declined", "rejected by the store"
PAID, PARTLY_REFUNDED, REFUNDED = "paid", "partly refunded", "refunded"
MASKED_FIELDS = ("username", "password")


@dataclass
class Order:
    orderid: int
    invoice: str
    currency: str
    cart: Cart
    answer_processed: bool = True  # how the store answers the CompleteOrderRequest
    status: str = AWAITING
    transactionid: str = ""
    refunded: int = 0
    comments: list[str] = field(default_factory=list)  # the platform's "internal comments"

    @property
    def amounttotal(self) -> int:
        return self.cart.amounttotal

    @property
    def paid(self) -> bool:
        """The store accepted a payment for it (whatever was refunded since)."""
        return self.status in (PAID, PARTLY_REFUNDED, REFUNDED)

    @property
    def refundable(self) -> bool:
        return self.status in (PAID, PARTLY_REFUNDED)


@dataclass(frozen=True)
class StoreAnswer:
    """The CompleteOrderResponse the store gives to a notification."""

    processed: int
    errorcode: str = ""
    errormessage: str = ""


ACCEPTED = StoreAnswer(1)


@dataclass(frozen=True)
class Exchange:
    at: str
    direction: str
    url: str
    request: Any
    response: Any
    checked: str  # the received object whose signature the store checked
    signature: str  # "valid", "INVALID", or why there was nothing to check


class Store:
    def __init__(self, credentials: tuple[str, str], first_orderid: int = 1001, answer_delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._answer_delay = answer_delay
        self._ids = itertools.count(first_orderid)
        self._orders: dict[int, Order] = {}
        self._log: list[Exchange] = []
        self._credentials = credentials

    @property
    def credentials(self) -> tuple[str, str]:
        """The merchant's Credential 1 and 2, sent on every CheckoutRequest and RefundRequest."""
        with self._lock:
            return self._credentials

    def set_credentials(self, username: str, password: str) -> None:
        with self._lock:
            self._credentials = (username, password)

    @property
    def answer_delay(self) -> float:
        """A slow store: seconds the notification URL waits before it answers (real ones take 0.3-2 s)."""
        with self._lock:
            return self._answer_delay

    def set_answer_delay(self, seconds: float) -> None:
        with self._lock:
            self._answer_delay = seconds

    def new_order(self, cart: Cart, answer_processed: bool, currency: str = CURRENCY) -> Order:
        with self._lock:
            orderid = next(self._ids)
            order = Order(orderid, f"AB-{orderid}", currency, cart, answer_processed)
            self._orders[orderid] = order
            return order

    def order(self, orderid: object) -> Order | None:
        with self._lock:
            return self._find(orderid)

    def orders(self) -> list[Order]:
        """Newest first."""
        with self._lock:
            return sorted(self._orders.values(), key=lambda order: -order.orderid)

    def checkout_failed(self, order: Order, message: str) -> None:
        """The platform shows its error page and keeps the gateway's message in the order's comments."""
        with self._lock:
            order.status = CHECKOUT_ERROR
            _comment(order, message)

    def receive_completion(self, body: dict[str, Any]) -> StoreAnswer:
        """Check a (correctly signed) CompleteOrderRequest against the order and record it.

        Checking and recording happen under one lock, so a notification repeated or delivered twice
        at once is answered the same way and recorded once.
        """
        with self._lock:
            order = self._find(body.get("orderid"))
            if order is None or order.invoice != wire_text(body.get("invoice")):
                return StoreAnswer(0, "404", "unknown order")
            amount = wire_text(body.get("amount"))
            if amount != str(order.amounttotal):
                return StoreAnswer(0, "409", f"amount {amount} is not the order total {order.amounttotal}")
            approved = wire_text(body.get("approved")) == "1"
            transactionid = wire_text(body.get("transactionid"))
            if order.paid:
                if approved and transactionid != order.transactionid:
                    return StoreAnswer(0, "ALREADY_PAID", f"order already paid by transaction {order.transactionid}")
                return ACCEPTED  # a repeat changes nothing
            if not approved:
                order.status = DECLINED
                _comment(order, f"{wire_text(body.get('errorcode'))}: {wire_text(body.get('errormessage'))}")
                return ACCEPTED
            order.transactionid = transactionid
            if not order.answer_processed:
                order.status = REJECTED
                return StoreAnswer(0, "OUT_OF_STOCK", "the store could not accept this order")
            order.status = PAID
            return ACCEPTED

    def record_refund(self, order: Order, amount: int) -> None:
        with self._lock:
            order.refunded += amount
            order.status = REFUNDED if order.refunded >= order.amounttotal else PARTLY_REFUNDED

    def record(self, direction: str, url: str, request: Any, response: Any, checked: str, signature: str) -> None:
        at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        exchange = Exchange(at, direction, url, mask(request), mask(response), checked, signature)
        with self._lock:
            self._log.insert(0, exchange)

    def log(self) -> list[Exchange]:
        """Newest first."""
        with self._lock:
            return list(self._log)

    def _find(self, orderid: object) -> Order | None:
        text = wire_text(orderid)
        return self._orders.get(int(text)) if text.isascii() and text.isdigit() else None


def _comment(order: Order, text: str) -> None:
    if text not in order.comments:
        order.comments.append(text)


def mask(body: Any) -> Any:
    """The merchant's credentials never appear on the log page."""
    if not isinstance(body, dict):
        return body
    return {key: ("(hidden)" if key in MASKED_FIELDS else value) for key, value in body.items()}
