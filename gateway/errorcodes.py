"""Why a checkout, payment, void or refund did not go through, as the store and the shopper see it.

One vocabulary for the domain (which records a payment's code for the shopper's errorurl) and the
wire (the protocol's ``errorcode`` field). Numbered as in the platform's official sample gateway.
"""
from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    BAD_REQUEST = "100"  # malformed body, wrong type, bad signature, a randomkey used twice
    MERCHANT_AUTHENTICATION = "101"  # the processor refused the merchant's credentials
    CHECKOUT_FAILED = "102"  # checkout could not be started
    REFUND_FAILED = "103"  # void or refund refused
    ORDER_NOT_FOUND = "104"  # the order or charge is unknown to us
    CARD_DECLINED = "105"  # the shopper's card was declined
    PROCESSOR_UNAVAILABLE = "106"  # the processor could not be reached or answered an error
    CANCELLED = "107"  # the shopper cancelled or the payment expired
