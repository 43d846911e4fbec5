"""Marshmallow schemas of every object on the wire, in the field names the platform uses."""
from __future__ import annotations

from typing import Any

from babel.numbers import list_currencies
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

from .fields import MAX_MINOR_UNITS, Flag, Quantity, WholeNumber

CENTS = " of minor units (cents)"
_CURRENCIES = frozenset(list_currencies())


class WireSchema(Schema):
    """Fields the text does not list are accepted and ignored."""

    class Meta:
        unknown = EXCLUDE


def _text(max_length: int, *, min_length: int = 0, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)


def _money(**kwargs: Any) -> WholeNumber:
    return WholeNumber(unit=CENTS, maximum=MAX_MINOR_UNITS, **kwargs)


def _store_url() -> fields.Url:
    return fields.Url(required=True, schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000))


def prepare() -> None:
    """Build the store URLs' pattern now: marshmallow builds it at its first use (50 ms), once per process."""
    _store_url().deserialize("https://store.example/")


class AddressSchema(WireSchema):
    firstname = _text(100, load_default="", allow_none=True)
    lastname = _text(100, load_default="", allow_none=True)
    company = _text(200, load_default="", allow_none=True)
    address = _text(300, load_default="", allow_none=True)
    address2 = _text(300, load_default="", allow_none=True)
    city = _text(100, load_default="", allow_none=True)
    state = _text(100, load_default="", allow_none=True)
    zip = _text(30, load_default="", allow_none=True)
    country = _text(60, load_default="", allow_none=True)
    phone = _text(40, load_default="", allow_none=True)


class ItemSchema(WireSchema):
    itemid = _text(100, load_default="")
    itemname = _text(500, required=True)
    unitprice = _money(required=True)
    quantity = Quantity(required=True)


class CheckoutRequestSchema(WireSchema):
    type = _text(20, required=True)
    orderid = WholeNumber(required=True, minimum=1)
    invoice = _text(64, required=True)
    email = _text(254, load_default="")
    billing = fields.Nested(AddressSchema, load_default=dict)
    shipping = fields.Nested(AddressSchema, load_default=dict)
    currency = _text(3, required=True)
    amounttotal = _money(required=True, minimum=1)
    taxtotal = _money(load_default=0, minimum=0)
    shippingtotal = _money(load_default=0, minimum=0)
    discount = _money(load_default=0, minimum=0)
    items = fields.List(fields.Nested(ItemSchema), load_default=list, validate=validate.Length(max=1000))
    username = _text(500, min_length=1, required=True)
    password = _text(500, min_length=1, required=True)
    cancelurl = _store_url()
    errorurl = _store_url()
    notificationurl = _store_url()
    returnurl = _store_url()
    testmode = Flag(load_default=False)
    randomkey = _text(128, min_length=1, required=True)
    signature = _text(64, required=True)

    @validates("currency")
    def _known_currency(self, value: str, **_: Any) -> None:
        if value.upper() not in _CURRENCIES:
            raise ValidationError(f"unsupported currency code {value!r}")


class CheckoutResponseSchema(WireSchema):
    paymenttoken = fields.String()
    redirecturl = fields.String()
    redirectmethod = fields.String()
    errorcode = fields.String()
    errormessage = fields.String()
    randomkey = fields.String()
    signature = fields.String()


class CompleteOrderRequestSchema(WireSchema):
    orderid = fields.Integer()
    invoice = fields.String()
    amount = fields.Raw()
    approved = fields.Integer()
    transactionid = fields.String()
    errorcode = fields.String()
    errormessage = fields.String()
    randomkey = fields.String()
    signature = fields.String()


class CompleteOrderResponseSchema(WireSchema):
    processed = Flag(required=True)
    errorcode = fields.String(load_default="", allow_none=True)
    errormessage = fields.String(load_default="", allow_none=True)


class RefundRequestSchema(WireSchema):
    type = _text(20, required=True)
    orderid = WholeNumber(required=True, minimum=1)
    invoice = _text(64, required=True)
    transactionid = _text(128, min_length=1, required=True)
    username = _text(500, required=True)
    password = _text(500, required=True)
    currency = _text(3, load_default="")
    amounttotal = _money(required=True, minimum=1)
    is_full_refund = Flag(load_default=False)
    randomkey = _text(128, min_length=1, required=True)
    signature = _text(64, required=True)


class RefundResponseSchema(WireSchema):
    approved = fields.Integer()
    transactionid = fields.String()
    errorcode = fields.String()
    errormessage = fields.String()
    randomkey = fields.String()
    signature = fields.String()


def describe_errors(messages: dict[str, Any] | list[Any], prefix: str = "") -> str:
    """Flatten marshmallow's nested messages into one line a merchant can act on."""
    if isinstance(messages, list):  # a schema-level error, not tied to a field
        return "; ".join(str(message).rstrip(".") for message in messages)
    parts: list[str] = []
    for key, value in sorted(messages.items(), key=lambda kv: str(kv[0])):
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(describe_errors(value, prefix=f"{name}."))
        else:
            text = "; ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            parts.append(f"{name}: {text.rstrip('.')}")
    return "; ".join(parts)
