"""What the shopper buys: the store's small catalogue and the cart read from the cart page's form."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from gateway.money import minor_digits

CATALOGUE = (
    {"itemid": "123abc", "itemname": "Espresso cup", "unitprice": 1200},
    {"itemid": "asd1-22", "itemname": "Coffee beans 1 kg", "unitprice": 2200},
    {"itemid": "111q-azas", "itemname": "Paper filter", "unitprice": 5},
)
CURRENCY = "USD"
DEFAULT_CHARGES = {"tax": "10.00", "shipping": "5.00", "discount": "0.00"}  # as typed on the cart page


class FormError(ValueError):
    """A form field the emulator cannot use; its text is shown to the person who typed it."""


@dataclass(frozen=True)
class Cart:
    items: tuple[dict[str, Any], ...]  # CheckoutRequest items: itemid, itemname, unitprice, quantity
    taxtotal: int
    shippingtotal: int
    discount: int

    @property
    def amounttotal(self) -> int:
        goods = sum(item["unitprice"] * item["quantity"] for item in self.items)
        return goods + self.taxtotal + self.shippingtotal - self.discount


def read_cart(form: Mapping[str, str]) -> Cart:
    """The cart page's quantities and charges; a cart with nothing to pay is refused."""
    items = tuple({**product, "quantity": quantity} for product in CATALOGUE
                  if (quantity := _quantity(form, product)) > 0)
    if not items:
        raise FormError("Choose at least one item.")
    tax, shipping, discount = (to_cents(form.get(name, default), name) for name, default in DEFAULT_CHARGES.items())
    cart = Cart(items, taxtotal=tax, shippingtotal=shipping, discount=discount)
    if cart.amounttotal <= 0:
        raise FormError("The discount leaves nothing to pay.")
    return cart


def to_cents(text: str, label: str, currency: str = CURRENCY) -> int:
    """An amount typed in dollars ("12.50") as integer cents: exact, never a float, never a fraction of a cent."""
    digits = minor_digits(currency)
    try:
        value = Decimal(text.strip() or "0")
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0 or value.as_tuple().exponent < -digits:
        raise FormError(f"{label}: {text!r} is not an amount in {currency}")
    return int(value.scaleb(digits))


def _quantity(form: Mapping[str, str], product: dict[str, Any]) -> int:
    text = form.get(f"qty-{product['itemid']}", "").strip() or "0"
    if not (text.isascii() and text.isdigit()):
        raise FormError(f"Quantity of {product['itemname']}: {text!r} is not a whole number")
    return int(text)
