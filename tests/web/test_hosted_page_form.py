"""The card form without its script: what the server accepts, and the rules it hands the script."""
from __future__ import annotations

import json
import re
from datetime import date

import pytest

from gateway.cards import CardFormError, client_rules, detect_brand, parse_card

from ..flow_helpers import open_session, pay, payment_row


@pytest.mark.parametrize("typed, month", [("12/39", 12), ("1239", 12), ("12 / 2039", 12), ("1/39", 1)])
def test_expiry_typed_without_the_script_is_accepted(typed, month):
    card = parse_card({"card_number": "4242 4242 4242 4242", "expiry": typed, "cvc": "123", "holder": "Ada"},
                      today=date(2026, 1, 1))
    assert (card.exp_month, card.exp_year) == (month, 2039)


@pytest.mark.parametrize("typed", ["1339", "12 39", "123", "12/390", "0039"])
def test_malformed_expiry_is_refused(typed):
    with pytest.raises(CardFormError) as refused:
        parse_card({"card_number": "4242424242424242", "expiry": typed, "cvc": "123", "holder": "Ada"})
    assert refused.value.errors == {"expiry": "Enter the expiry date as MM/YY."}


def test_a_purchase_with_an_unslashed_expiry_goes_through(client, services, store):
    token, csrf = open_session(client)
    response = pay(client, token, csrf, expiry="1239")
    assert response.status_code in (202, 303)
    assert payment_row(services, token).card_exp_month == 12


def test_script_rules_are_the_servers_rules():
    rules = json.loads(client_rules())
    for number in ("378282246310005", "4242424242424242", "5555555555554444", "6011111111111117", "3530111333300000",
                   "30569309025904"):
        brand, lengths, cvc = detect_brand(number)  # type: ignore[misc]
        [rule] = [r for r in rules["brands"] if re.match(r["pattern"], number)][:1]
        assert (rule["brand"], tuple(rule["lengths"]), rule["cvc"]) == (brand, lengths, cvc)
    assert re.match(rules["expiry"], "1239") and not re.match(rules["expiry"], "12 39")


def test_form_carries_translated_messages_for_the_script(client):
    token, _ = open_session(client)
    html = client.get("/pay", query_string={"paymenttoken": token, "lang": "de"}).get_data(as_text=True)
    messages = json.loads(re.search(r'data-messages="([^"]+)"', html).group(1).replace("&#34;", '"'))  # type: ignore[union-attr]
    assert messages["cvc_4"] == "Geben Sie den 4-stelligen Sicherheitscode ein."
    assert 'src="/assets/' in html and 'pay.js" defer' in html
