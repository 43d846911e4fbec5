"""Marshmallow fields for the wire's numbers, which may arrive as JSON numbers or as text."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError("must be a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValidationError("must be a number") from exc
    if not number.is_finite():
        raise ValidationError("must be a finite number")
    return number


class WholeNumber(fields.Field):
    """An integer sent as ``123``, ``"123"`` or ``123.00``; anything with a fraction is refused."""

    def __init__(self, *, minimum: int | None = None, unit: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.unit = unit

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        number = _as_decimal(value)
        if number != number.to_integral_value():
            raise ValidationError(f"must be a whole number{self.unit}, got {value}")
        whole = int(number)
        if self.minimum is not None and whole < self.minimum:
            raise ValidationError(f"must be at least {self.minimum}{self.unit}")
        return whole

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int | None:
        return None if value is None else int(value)


class Quantity(fields.Field):
    """A positive item quantity; stores may sell fractional quantities (weights)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        number = _as_decimal(value)
        if number <= 0:
            raise ValidationError("must be greater than 0")
        return number

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Flag(fields.Field):
    """A boolean sent as true/false, 1/0 or their text."""

    TRUE = {"1", "true", "yes", "on"}
    FALSE = {"0", "false", "no", "off", ""}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValidationError("must be true or false (or 1 or 0)")

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> bool | None:
        return None if value is None else bool(value)
