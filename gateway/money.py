"""Amounts are integers in the currency's minor units; these helpers format them for people."""
from __future__ import annotations

from decimal import Decimal

from babel import Locale
from babel.numbers import format_currency, get_currency_precision


def minor_digits(currency: str) -> int:
    return get_currency_precision(currency.upper())


def to_major(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-minor_digits(currency))


def format_money(amount_minor: int, currency: str, locale: Locale | str = "en_US") -> str:
    """``format_money(12312, "USD") == "$123.12"``; ``locale`` the shopper's (a parsed one saves a lookup)."""
    return format_currency(to_major(amount_minor, currency), currency.upper(), locale=locale)
