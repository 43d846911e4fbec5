"""The small interface every processor connector implements, and its error taxonomy.

A connector charges (authorize and capture in one step), voids, refunds and tells whether a
charge has settled. It raises one of the errors below for anything but success, so the payment
state machine never has to know which processor it is talking to.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from ..cards import Card, CardAcceptance
from ..vault import Credentials


@dataclass(frozen=True)
class SaleRequest:
    amount: int  # minor units
    currency: str
    card: Card
    credentials: Credentials
    reference: str  # unique per attempt of a payment; connectors use it to detect duplicates
    invoice: str
    orderid: int
    test_mode: bool = False
    email: str = ""


@dataclass(frozen=True)
class SaleLookup:
    """What identifies a sale whose outcome we never heard (the process died mid-call)."""

    reference: str
    invoice: str
    amount: int
    currency: str
    credentials: Credentials
    test_mode: bool = False
    orderid: int = 0  # what a connector sends as invoice number when the invoice is empty
    submitted_at: datetime | None = None  # when the attempt began: lookups need not look earlier
    card_last4: str = ""  # the attempt's card: a sale of another card is never this attempt's


@dataclass(frozen=True)
class ProcessorCharge:
    """An approved sale."""

    processor_transaction_id: str
    amount: int
    currency: str
    card_brand: str
    card_last4: str
    message: str = "Approved"
    avs_result: str = ""  # the processor's address-verification code (e.g. Authorize.Net's avsResultCode)
    cvv_result: str = ""  # the processor's security-code check (e.g. Authorize.Net's cvvResultCode)


class Found(str, Enum):
    FOUND = "found"  # the processor has this sale, approved
    ABSENT = "absent"  # the processor answered authoritatively that no such sale was approved
    UNKNOWN = "unknown"  # the processor could not say (unreachable, partial search, held for review...)


@dataclass(frozen=True)
class SaleLookupResult:
    """The three answers of a crash lookup: absence is only ever inferred from an authoritative answer."""

    found: Found
    charge: ProcessorCharge | None = None
    reason: str = ""

    @classmethod
    def of(cls, charge: ProcessorCharge) -> "SaleLookupResult":
        return cls(Found.FOUND, charge)

    @classmethod
    def absent(cls) -> "SaleLookupResult":
        return cls(Found.ABSENT)

    @classmethod
    def unknown(cls, reason: str) -> "SaleLookupResult":
        return cls(Found.UNKNOWN, reason=reason)


@dataclass(frozen=True)
class ChargeRef:
    """What a connector needs to act on an earlier charge."""

    processor_transaction_id: str
    amount: int
    currency: str
    card_last4: str
    card_exp_month: int
    card_exp_year: int
    test_mode: bool = False


@dataclass(frozen=True)
class Adjustment:
    """An approved void or refund."""

    processor_transaction_id: str
    amount: int
    kind: str  # "void" or "refund"


class ProcessorError(Exception):
    """Base class: the processor did not do what was asked."""

    code = "processor_error"

    def __init__(self, message: str, *, code: str | None = None, merchant_message: str | None = None) -> None:
        super().__init__(message)
        self.message = message  # safe to show the shopper
        if code:
            self.code = code
        self.merchant_message = merchant_message or message  # safe to show the merchant


class CardDeclined(ProcessorError):
    """The card was refused; the shopper may try another."""

    code = "card_declined"


class MerchantAuthenticationError(ProcessorError):
    """The merchant's credentials were refused by the processor."""

    code = "merchant_authentication"


class ProcessorUnavailable(ProcessorError):
    """The request never reached the processor (refused connection, connect timeout...) or was not acted
    on: nothing happened, and it may be sent again. A failure after it may have left is OutcomeUnknown."""

    code = "processor_unavailable"


class OutcomeUnknown(ProcessorUnavailable):
    """The request may or may not have been carried out (read timeout, answer cut off or unreadable);
    only a later lookup can tell. A subclass, so callers that treat unavailability as "unknown" stay safe."""

    code = "outcome_unknown"


class AdjustmentRefused(ProcessorError):
    """A void or refund was refused (already settled, already voided, amount too large...)."""

    code = "adjustment_refused"


class Processor(Protocol):
    name: str
    accepts: CardAcceptance  # what the hosted page may send it; anything else is refused before any call

    def sale(self, request: SaleRequest) -> ProcessorCharge: ...

    def void(self, charge: ChargeRef, credentials: Credentials) -> Adjustment: ...

    def refund(self, charge: ChargeRef, amount: int, credentials: Credentials) -> Adjustment: ...

    def is_settled(self, charge: ChargeRef, credentials: Credentials) -> bool: ...

    def find_sale(self, lookup: SaleLookup) -> SaleLookupResult:
        """What became of a sale whose answer we never heard: found, absent (authoritatively) or unknown.

        Raises only MerchantAuthenticationError; every other failure to look is ``unknown``."""
        ...
