"""Odd processor answers seen from the shopper's page, the store and the recovery round (issue 19):
an answer that may hide a charge leaves the shopper waiting for the lookup, never a 500 nor a decline."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any, Iterator

import pytest
import requests
import responses
from sqlalchemy import update

from gateway import create_app
from gateway.cards import Card
from gateway.jobs.rounds import run_once
from gateway.models import Payment, utcnow
from gateway.processors.authorizenet import PRODUCTION_URL, AuthorizeNetProcessor
from gateway.processors.base import Found, SaleLookup, SaleRequest
from gateway.vault import Credentials

from ..flow_helpers import open_session, pay, payment_row
from ..protocol_helpers import NOTIFY_URL, complete_order_answer

NUMBER = "4111111111111111"


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """Authorize.Net and the store, both answered by `responses`."""
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def authorizenet(settings: Any) -> Iterator[Any]:
    app = create_app(replace(settings, processor="authorizenet"))
    yield app
    app.extensions["gateway"].db.dispose()


def anet(body: dict[str, Any]) -> bytes:
    return b"\xef\xbb\xbf" + json.dumps(body).encode()


def duplicate(**original: str) -> bytes:
    return anet({"transactionResponse": {"responseCode": "3", "transId": "0", **original, "errors": [
        {"errorCode": "11", "errorText": "A duplicate transaction has been submitted."}]},
        "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}})


def refused_login(code: str) -> bytes:
    return anet({"messages": {"resultCode": "Error", "message": [{"code": code, "text": "User authentication failed."}]}})


def listed(trans_id: str, last4: str, submitted: Any) -> dict[str, Any]:
    return {"transId": trans_id, "submitTimeUTC": submitted.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "transactionStatus": "capturedPendingSettlement", "invoiceNumber": "AB-12234", "accountType": "Visa",
            "accountNumber": f"XXXX{last4}", "settleAmount": 123.12}


def waits_for_the_lookup(page: Any, services: Any, token: str) -> None:
    """The shopper is told the payment is being processed (not declined, not asked to pay again)."""
    text = page.get_data(as_text=True)
    assert page.status_code == 202 and "Processing your payment" in text and "declined" not in text
    row = payment_row(services, token)
    assert (row.state, row.decline_count) == ("authorizing", 0)


def age_the_attempt(services: Any, minutes: int = 5) -> None:
    with services.db.transaction() as session:
        session.execute(update(Payment).values(updated_at=utcnow() - timedelta(minutes=minutes)))


def test_body_cut_off_mid_stream_is_an_unknown_outcome_not_a_500(authorizenet, api):
    services, client = authorizenet.extensions["gateway"], authorizenet.test_client()
    for _ in range(2):
        api.add(responses.POST, PRODUCTION_URL, body=requests.exceptions.ChunkedEncodingError("Connection broken"))
    token, csrf = open_session(client)
    waits_for_the_lookup(pay(client, token, csrf, number=NUMBER), services, token)


def test_resent_duplicate_without_the_original_is_not_shown_as_a_decline(authorizenet, api):
    services, client = authorizenet.extensions["gateway"], authorizenet.test_client()
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    api.add(responses.POST, PRODUCTION_URL, body=duplicate())
    token, csrf = open_session(client)
    waits_for_the_lookup(pay(client, token, csrf, number=NUMBER), services, token)


def test_answer_without_messages_or_transaction_is_an_unknown_outcome(authorizenet, api):
    services, client = authorizenet.extensions["gateway"], authorizenet.test_client()
    api.add(responses.POST, PRODUCTION_URL, body=b"{}")
    api.add(responses.POST, PRODUCTION_URL, body=b"{}")
    token, csrf = open_session(client)
    waits_for_the_lookup(pay(client, token, csrf, number=NUMBER), services, token)


@pytest.mark.parametrize("code", ["E00005", "E00006", "E00007", "E00010"])
def test_refused_credentials_fail_the_payment_without_counting_a_decline(authorizenet, api, code):
    """The store is told its credentials were refused (errorcode 101); the shopper goes to its error page."""
    services, client = authorizenet.extensions["gateway"], authorizenet.test_client()
    api.add(responses.POST, PRODUCTION_URL, body=refused_login(code))
    api.add(responses.POST, NOTIFY_URL, json=complete_order_answer(1))
    token, csrf = open_session(client)
    page = pay(client, token, csrf, number=NUMBER)
    assert page.status_code == 303 and page.headers["Location"].endswith("error=101")
    row = payment_row(services, token)
    assert (row.state, row.decline_count, row.last_decline) == ("failed", 0, "")
    told = json.loads(api.calls[-1].request.body)
    assert (told["approved"], told["errorcode"]) == (0, "101") and "API Login ID" in told["errormessage"]


def test_unexpected_error_from_the_processor_is_an_unknown_outcome_resolved_by_the_lookup(client, services, monkeypatch,
                                                                                          caplog):
    """A connector's bug after the request may have left: no 500, the payment waits for the lookup, which
    (the sandbox has no such charge) reopens it."""
    def broken(request: Any) -> Any:
        raise KeyError(f"transId of {request.card.number}")

    monkeypatch.setattr(services.processor.inner, "sale", broken)
    token, csrf = open_session(client)
    waits_for_the_lookup(pay(client, token, csrf), services, token)
    assert "KeyError" in caplog.text and "4242424242424242" not in caplog.text
    monkeypatch.undo()
    age_the_attempt(services)
    run_once(services)
    assert payment_row(services, token).state == "open"


def test_recovery_does_not_adopt_another_cards_charge_of_the_same_order(authorizenet, api):
    """The lookup matches the card's last four and the attempt's time: another card's (or a day-old)
    charge of the same order and amount is not this payment's; everything read, the payment reopens."""
    services, client = authorizenet.extensions["gateway"], authorizenet.test_client()
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    token, csrf = open_session(client)
    pay(client, token, csrf, number=NUMBER)
    age_the_attempt(services)
    api.add(responses.POST, PRODUCTION_URL, body=anet({"messages": {"resultCode": "Ok"}, "transactions": [
        listed("6001", "0002", utcnow() - timedelta(minutes=4)), listed("6002", "1111", utcnow() - timedelta(days=1))]}))
    api.add(responses.POST, PRODUCTION_URL, body=anet({"messages": {"resultCode": "Ok"}, "batchList": []}))
    run_once(services)
    assert payment_row(services, token).state == "open"
    assert NOTIFY_URL not in [call.request.url for call in api.calls]  # the store was told of no charge


def test_sandbox_and_authorizenet_agree_a_second_attempt_is_not_the_first_attempts_charge(services, api):
    """Attempt 1 of an order was charged; attempt 2 (same card, amount and invoice, begun ten minutes
    later) has an unknown outcome: both processors answer "absent" for attempt 2, neither adopts attempt 1's."""
    card = Card(number="4242424242424242", exp_month=12, exp_year=2039, cvc="123", holder="Ada", brand="visa")
    first = SaleRequest(12312, "USD", card, Credentials("user1", "password1"), "ps1a1", "AB-12234", 123)
    second = SaleLookup("ps1a2", "AB-12234", 12312, "USD", first.credentials, orderid=123,
                        submitted_at=utcnow() - timedelta(minutes=5), card_last4="4242")
    services.processor.sale(first)
    api.add(responses.POST, PRODUCTION_URL, body=anet({"messages": {"resultCode": "Ok"}, "transactions": [
        listed("6001", "4242", utcnow() - timedelta(minutes=15))]}))
    api.add(responses.POST, PRODUCTION_URL, body=anet({"messages": {"resultCode": "Ok"}, "batchList": []}))
    answers = [services.processor.find_sale(second).found, AuthorizeNetProcessor().find_sale(second).found]
    assert answers == [Found.ABSENT, Found.ABSENT]
