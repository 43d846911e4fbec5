"""Card data as the shopper typed it: validation, brand detection, and a form that never leaks the number."""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import date


def N_(message: str) -> str:
    """Marks a shopper message for the catalogues; the page translates it when it shows it."""
    return message


MESSAGES = {
    "number_missing": N_("Enter your card number."),
    "number_not_digits": N_("A card number has digits only."),
    "brand_unknown": N_("We accept Visa, Mastercard, American Express, Discover, Diners Club and JCB."),
    "number_invalid": N_("This card number is not valid; check it for typing mistakes."),
    "brand_not_accepted": N_("This type of card cannot be used here. Please use another card."),
    "number_too_long": N_("This card cannot be used here: its number is too long. Please use another card."),
    "expiry_format": N_("Enter the expiry date as MM/YY."),
    "expired": N_("This card has expired."),
    "cvc_3": N_("Enter the 3-digit security code."),
    "cvc_4": N_("Enter the 4-digit security code."),
    "cvc_any": N_("Enter the 3 or 4 digit security code."),
    "holder_missing": N_("Enter the name shown on the card."),
    "holder_long": N_("The name on the card is too long."),
}
HOLDER_MAX = 100
EXPIRY_PATTERN = r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*|\s*(\d{2})(\d{2})\s*"

_BRANDS: tuple[tuple[str, re.Pattern[str], tuple[int, ...], int], ...] = (
    # brand, prefix pattern, allowed lengths, CVC length
    ("amex", re.compile(r"^3[47]"), (15,), 4),
    ("visa", re.compile(r"^4"), (13, 16, 19), 3),
    ("mastercard", re.compile(r"^(5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720))"), (16,), 3),
    ("discover", re.compile(r"^(6011|65|64[4-9]|622)"), (16, 19), 3),
    ("diners", re.compile(r"^(36|38|30[0-5])"), (14, 16), 3),
    ("jcb", re.compile(r"^35(2[89]|[3-8])"), (16, 19), 3),
)

BRAND_NAMES = {
    "amex": "American Express",
    "visa": "Visa",
    "mastercard": "Mastercard",
    "discover": "Discover",
    "diners": "Diners Club",
    "jcb": "JCB",
}


@dataclass(frozen=True)
class CardAcceptance:
    """What a processor takes: brands and the longest card number its API accepts."""

    brands: frozenset[str] = frozenset(BRAND_NAMES)
    max_digits: int = 19


ANY_CARD = CardAcceptance()


@dataclass(frozen=True)
class Card:
    """A card for one authorization; lives only in memory and hides its number and CVC."""

    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str = field(repr=False)
    holder: str
    brand: str

    @property
    def last4(self) -> str:
        return self.number[-4:]


class CardFormError(ValueError):
    """Field-level problems with what the shopper typed, keyed by form field name."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def detect_brand(digits: str) -> tuple[str, tuple[int, ...], int] | None:
    for brand, pattern, lengths, cvc_length in _BRANDS:
        if pattern.match(digits):
            return brand, lengths, cvc_length
    return None


def _number_problem(digits: str, brand_info: tuple[str, tuple[int, ...], int] | None, accepts: CardAcceptance) -> str:
    """The MESSAGES key for what is wrong with a card number of digits only, or "" when it will do."""
    if brand_info is None:
        return "brand_unknown"
    if brand_info[0] not in accepts.brands:
        return "brand_not_accepted"
    if len(digits) not in brand_info[1] or not luhn_valid(digits):
        return "number_invalid"
    if len(digits) > accepts.max_digits:
        return "number_too_long"
    return ""


def _parse_expiry(text: str) -> tuple[int, int] | None:
    # "MM/YY", "M/YYYY", or "MMYY" as typed where the page's script did not add the "/".
    match = re.fullmatch(EXPIRY_PATTERN, text)
    if not match:
        return None
    month, year = (int(part) for part in (match.groups()[:2] if match.group(1) else match.groups()[2:]))
    if year < 100:
        year += 2000
    if not 1 <= month <= 12:
        return None
    return month, year


def parse_card(form: dict[str, str], accepts: CardAcceptance = ANY_CARD, today: date | None = None) -> Card:
    """Validate the card form; raise :class:`CardFormError` with a message per bad field.

    A card the processor cannot take (``accepts``) is refused here, so it never costs the shopper a decline."""
    today = today or date.today()
    errors: dict[str, str] = {}
    digits = re.sub(r"[\s-]", "", form.get("card_number", ""))
    brand_info = None
    if not digits:
        errors["card_number"] = MESSAGES["number_missing"]
    elif not digits.isdigit():
        errors["card_number"] = MESSAGES["number_not_digits"]
    else:
        brand_info = detect_brand(digits)
        problem = _number_problem(digits, brand_info, accepts)
        if problem:
            errors["card_number"] = MESSAGES[problem]

    expiry = _parse_expiry(form.get("expiry", ""))
    if expiry is None:
        errors["expiry"] = MESSAGES["expiry_format"]
    elif (expiry[1], expiry[0]) < (today.year, today.month):
        errors["expiry"] = MESSAGES["expired"]

    cvc = form.get("cvc", "").strip()
    expected_cvc = brand_info[2] if brand_info else None
    if not cvc.isdigit() or (expected_cvc and len(cvc) != expected_cvc) or not 3 <= len(cvc) <= 4:
        errors["cvc"] = MESSAGES[f"cvc_{expected_cvc}" if expected_cvc else "cvc_any"]

    holder = " ".join(form.get("holder", "").split())
    if not holder:
        errors["holder"] = MESSAGES["holder_missing"]
    elif len(holder) > HOLDER_MAX:
        errors["holder"] = MESSAGES["holder_long"]

    if errors:
        raise CardFormError(errors)
    assert brand_info is not None and expiry is not None
    return Card(number=digits, exp_month=expiry[0], exp_year=expiry[1], cvc=cvc, holder=holder, brand=brand_info[0])


@functools.lru_cache(maxsize=8)
def client_rules(accepts: CardAcceptance = ANY_CARD) -> str:
    """The brand rules above and what the processor accepts, as JSON, so the page's script checks
    exactly what the server checks. Made once per processor's acceptance, not per page view."""
    return json.dumps({
        "brands": [{"brand": brand, "name": BRAND_NAMES[brand], "pattern": pattern.pattern, "lengths": lengths,
                    "cvc": cvc, "accepted": brand in accepts.brands} for brand, pattern, lengths, cvc in _BRANDS],
        "maxDigits": accepts.max_digits,
        "holderMax": HOLDER_MAX,
        "expiry": f"^(?:{EXPIRY_PATTERN})$",
    }, separators=(",", ":"))
