"""Marshmallow fields for the wire's numbers, which may arrive as JSON numbers or as text.

A number's text is length-checked, and its magnitude checked on the Decimal, before it is ever
turned into an int: ``1e1000000`` is 9 characters, and its int would take a worker half a minute.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields

MAX_NUMBER_TEXT = 40
MAX_MINOR_UNITS = 10**12  # ten billion in a currency with cents: far above any real order
MAX_WHOLE = 10**15  # order numbers and other identifiers (the database holds 64-bit integers)
MAX_QUANTITY = Decimal(10**6)
MAX_QUANTITY_DECIMALS = 6


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError("must be a number")
    text = str(value).strip() if isinstance(value, str) else None
    if text is not None and len(text) > MAX_NUMBER_TEXT:
        raise ValidationError(f"must be a number of at most {MAX_NUMBER_TEXT} characters")
    try:
        number = Decimal(text if text is not None else value)
    except InvalidOperation as exc:
        raise ValidationError("must be a number") from exc
    if not number.is_finite():
        raise ValidationError("must be a finite number")
    return number


def _at_most(number: Decimal, maximum: int | Decimal, unit: str) -> None:
    """Compare magnitudes without building a huge int (``1e999999`` stays cheap)."""
    if number.adjusted() > len(str(maximum)) or abs(number) > maximum:
        raise ValidationError(f"must be at most {maximum}{unit}")


class WholeNumber(fields.Field[int]):
    """An integer sent as ``123``, ``"123"`` or ``123.00``; anything with a fraction is refused."""

    def __init__(
        self, *, minimum: int | None = None, maximum: int = MAX_WHOLE, unit: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum
        self.unit = unit

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        number = _as_decimal(value)
        _at_most(number, self.maximum, self.unit)
        if number != number.to_integral_value():
            raise ValidationError(f"must be a whole number{self.unit}, got {value}")
        whole = int(number)
        if self.minimum is not None and whole < self.minimum:
            raise ValidationError(f"must be at least {self.minimum}{self.unit}")
        return whole

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int | None:
        return None if value is None else int(value)


class Quantity(fields.Field[Decimal]):
    """A positive item quantity; stores may sell fractional quantities (weights)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        number = _as_decimal(value)
        _at_most(number, MAX_QUANTITY, "")
        if number <= 0:
            raise ValidationError("must be greater than 0")
        if number.normalize().as_tuple().exponent < -MAX_QUANTITY_DECIMALS:  # type: ignore[operator]
            raise ValidationError(f"must have at most {MAX_QUANTITY_DECIMALS} decimal places")
        return number

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Flag(fields.Field[bool]):
    """A boolean sent as true/false, 1/0 or their text."""

    TRUE = {"1", "true", "yes", "on"}
    FALSE = {"0", "false", "no", "off", ""}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str) and len(value) <= 8 else None
        if isinstance(value, int):
            text = str(value) if -10 < value < 10 else None
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValidationError("must be true or false (or 1 or 0)")

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> bool | None:
        return None if value is None else bool(value)
