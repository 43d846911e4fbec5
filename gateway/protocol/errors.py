"""Error codes in the protocol's errorcode field, numbered as in the official sample gateway."""
from __future__ import annotations

from enum import Enum
from typing import Mapping


class ErrorCode(str, Enum):
    BAD_REQUEST = "100"  # malformed body, wrong type, bad signature
    MERCHANT_AUTHENTICATION = "101"  # the processor refused the merchant's credentials
    CHECKOUT_FAILED = "102"  # checkout could not be started
    REFUND_FAILED = "103"  # void or refund refused
    ORDER_NOT_FOUND = "104"  # the order or transaction is unknown to us
    CARD_DECLINED = "105"  # the shopper's card was declined
    PROCESSOR_UNAVAILABLE = "106"  # the processor could not be reached or answered an error
    CANCELLED = "107"  # the shopper cancelled or the payment session expired


class ProtocolError(Exception):
    """A request we must answer with errorcode/errormessage instead of success.

    ``echo`` holds the request's own fields that passed validation, as they were sent, so an
    error answer can be signed over them; a field that did not validate is never signed.
    """

    def __init__(self, code: ErrorCode, message: str, echo: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.echo: Mapping[str, str] = echo or {}
