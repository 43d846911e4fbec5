"""The card form without its script: what the server accepts, and the rules it hands the script."""
from __future__ import annotations

import dataclasses
import json
import re
from datetime import date

import pytest
import responses

from gateway import create_app
from gateway.cards import CardAcceptance, CardFormError, client_rules, detect_brand, parse_card

from ..flow_helpers import approve_all, open_session, pay, payment_row
from ..protocol_helpers import card_form


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


NINETEEN_DIGIT_VISA = "4111111111111111110"


@pytest.fixture
def authorizenet_client(settings):  # type: ignore[no-untyped-def]
    """The hosted page with Authorize.Net as the processor, and no way out to it: any call it made
    would fail on the unregistered URL, and is counted in ``calls``."""
    app = create_app(dataclasses.replace(settings, processor="authorizenet"))
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as network:
            yield app.test_client(), app.extensions["gateway"], network
    finally:
        app.extensions["gateway"].db.dispose()


def test_a_19_digit_visa_is_refused_on_the_page_when_authorizenet_cannot_take_it(authorizenet_client):
    client, services, network = authorizenet_client
    token, csrf = open_session(client)
    response = client.post("/pay/submit", headers={"Accept-Language": "de"},
                           data=card_form(token, csrf, number=NINETEEN_DIGIT_VISA))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Diese Karte kann hier nicht verwendet werden: Ihre Nummer ist zu lang." in html
    assert 'id="decline"' not in html  # a form error, not a decline counting down the shopper's tries
    assert not network.calls
    payment = payment_row(services, token)
    assert (payment.state, payment.decline_count, payment.attempt) == ("open", 0, 0)


def test_the_same_19_digit_visa_is_charged_with_the_sandbox(client, services, store):
    approve_all(store)
    token, csrf = open_session(client)
    response = pay(client, token, csrf, number=NINETEEN_DIGIT_VISA)
    assert response.status_code in (202, 303)
    payment = payment_row(services, token)
    assert payment.state in ("approved", "completed") and payment.card_last4 == "1110"


def test_a_brand_the_processor_does_not_take_is_refused_before_the_number_is_judged():
    visa_only = CardAcceptance(brands=frozenset({"visa"}))
    with pytest.raises(CardFormError) as refused:
        parse_card({"card_number": "5555555555554444", "expiry": "12/39", "cvc": "123", "holder": "Ada"}, visa_only)
    assert refused.value.errors == {"card_number": "This type of card cannot be used here. Please use another card."}
    assert parse_card({"card_number": "4242424242424242", "expiry": "12/39", "cvc": "123", "holder": "Ada"},
                      visa_only).brand == "visa"


def test_script_rules_carry_what_the_processor_accepts(authorizenet_client):
    client, _, _ = authorizenet_client
    token, _ = open_session(client)
    html = client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True)
    rules = json.loads(re.search(r'data-rules="([^"]+)"', html).group(1).replace("&#34;", '"'))  # type: ignore[union-attr]
    assert rules["maxDigits"] == 16 and all(rule["accepted"] for rule in rules["brands"])
    visa_only = json.loads(client_rules(CardAcceptance(brands=frozenset({"visa"}))))
    assert [rule["brand"] for rule in visa_only["brands"] if rule["accepted"]] == ["visa"]
    assert visa_only["maxDigits"] == 19
