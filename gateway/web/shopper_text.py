"""Shopper-facing texts that come from the payment and processor layers, translated at the page.

Those layers speak English; their shopper messages are listed here (marked for extraction) so
that the catalogues carry them and :func:`translated` can show them in the shopper's language.
"""
from __future__ import annotations

import functools
import json

from babel.support import NullTranslations
from flask_babel import gettext

from ..cards import MESSAGES, N_
from .i18n import catalogue

PROCESSOR_MESSAGES = (
    N_("Your card was declined."),
    N_("Your card has insufficient funds."),
    N_("Your card has expired."),
    N_("Your card's security code is incorrect."),
    N_("We could not reach the card network. Please try again."),
    N_("The card number is not valid."),
    N_("The billing address does not match the card."),
    N_("The billing address or security code does not match the card."),
    N_("The store's payment settings are not working. Please contact the store."),
    N_("We could not process this card. Please try another card."),
    N_("This card was declined a moment ago. Please use another card or wait a few minutes."),
    N_("This order has already been paid, or is being paid in another window. Nothing was charged."),
)
# The answer to a pay submission that found no free pay slot in time (gateway/admission.py).
BUSY = N_("So many shoppers are paying right now that your payment could not start. Nothing was charged; please press Pay again.")
KNOWN = frozenset(PROCESSOR_MESSAGES) | frozenset(MESSAGES.values()) | {BUSY}


def translated(message: str) -> str:
    """The shopper's language for a known message; an unknown one is shown as it came."""
    return gettext(message) if message in KNOWN else message


def client_messages() -> str:
    """The card form's messages in the shopper's language, for the page's inline validation."""
    return _messages_in(catalogue())


@functools.lru_cache(maxsize=16)
def _messages_in(catalogue: NullTranslations) -> str:
    """Once per language (Flask-Babel keeps one catalogue object per language), not once per page view:
    thirteen lookups through the request context were a twelfth of a page view's CPU."""
    return json.dumps({key: catalogue.ugettext(text) for key, text in MESSAGES.items()}, ensure_ascii=False,
                      separators=(",", ":"))
