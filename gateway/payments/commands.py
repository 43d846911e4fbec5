"""Typed commands the domain takes and outcomes it returns: the wire's shape stays at the edge.

The edge (gateway.web) parses, validates and authenticates a request, then builds one of these;
``fingerprint`` is its keyed digest of the whole request body, so a randomkey used again for a
different body is told apart from an exact retry without the domain ever seeing the body.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errorcodes import ErrorCode
from ..vault import Credentials


@dataclass(frozen=True)
class CheckoutCommand:
    """Start a payment for one order of one store (exchange 1)."""

    orderid: int
    invoice: str
    randomkey: str
    fingerprint: str
    currency: str
    amount_total: int
    notification_url: str
    return_url: str
    cancel_url: str
    error_url: str
    credentials: Credentials
    tax_total: int = 0
    shipping_total: int = 0
    discount: int = 0
    email: str = ""
    billing: dict[str, str] = field(default_factory=dict)
    shipping: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)
    test_mode: bool = False


@dataclass(frozen=True)
class CheckoutOutcome:
    """The payment the shopper is sent to pay: new, or the one an exact retry already started."""

    payment_token: str


class Asked(str, Enum):
    """What the merchant's Void/Refund button asked for; the gateway voids or refunds as the charge allows."""

    VOID = "void"
    REFUND = "refund"


@dataclass(frozen=True)
class RefundCommand:
    """Give money back on one charge (exchange 4): void it while that is possible, refund otherwise."""

    orderid: int
    invoice: str
    processor_transaction_id: str
    randomkey: str
    fingerprint: str
    asked: Asked
    amount: int
    currency: str
    credentials: Credentials


@dataclass(frozen=True)
class RefundOutcome:
    """approved with the void's or refund's own processor transaction id, or refused with a code and why."""

    approved: bool
    processor_transaction_id: str = ""
    error_code: ErrorCode | None = None
    message: str = ""

    @classmethod
    def refused(cls, code: ErrorCode, message: str) -> "RefundOutcome":
        return cls(False, "", code, message)


# An answer as the edge renders it for the wire. The domain stores it with the request's randomkey
# and gives exactly the same answer to a retry; it never looks inside.
RenderedAnswer = dict[str, Any]
