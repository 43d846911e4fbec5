"""Issue 11, the Authorize.Net cases: crash lookups, held sales and the connector's smaller faults."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
import requests
import responses
from sqlalchemy import update

from gateway import create_app
from gateway.cards import Card
from gateway.jobs.rounds import run_once
from gateway.models import Payment, utcnow
from gateway.processors.authorizenet import PRODUCTION_URL, AuthorizeNetProcessor
from gateway.processors.base import (
    AdjustmentRefused,
    CardDeclined,
    Found,
    MerchantAuthenticationError,
    OutcomeUnknown,
)

from ..flow_helpers import open_session, pay, payment_row
from ..protocol_helpers import NOTIFY_URL
from .test_authorizenet import CREDENTIALS, CVC, NUMBER, answer, attempt_lookup, charge_ref, listed, refused, sale_request, sent

FAILED_TOP = {"resultCode": "Error", "message": [{"code": "E00001", "text": "An error occurred during processing."}]}


def unsettled_capture(**changes: str) -> dict:
    return {**listed("6055", "capturedPendingSettlement"), **changes}


@pytest.fixture
def api():  # type: ignore[no-untyped-def]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def gateway(settings):  # type: ignore[no-untyped-def]
    app = create_app(replace(settings, processor="authorizenet"))
    yield app
    app.extensions["gateway"].db.dispose()


def crashed_mid_sale(gateway, api) -> str:  # type: ignore[no-untyped-def]
    """A shopper paid; Authorize.Net never answered (twice); the attempt is now stale."""
    client = gateway.test_client()
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    token, csrf = open_session(client)
    assert pay(client, token, csrf, number=NUMBER, cvc=CVC).status_code == 202
    with gateway.extensions["gateway"].db.transaction() as session:
        session.execute(update(Payment).values(updated_at=utcnow() - timedelta(hours=3)))
    api.calls.reset()
    return token


def test_case_03_recovery_never_reopens_on_an_incomplete_search(gateway, api):
    services = gateway.extensions["gateway"]
    token = crashed_mid_sale(gateway, api)
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[]))  # not among the unsettled ...
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())  # ... and the settled batches cannot be read
    run_once(services)
    payment = payment_row(services, token)
    assert payment.state == "authorizing"  # not reopened: the shopper cannot pay twice
    assert "cannot yet say whether it charged" in payment.attention and payment.retry_at is not None


def test_case_03_a_charge_that_settled_meanwhile_is_found_in_its_batch(gateway, api):
    services = gateway.extensions["gateway"]
    token = crashed_mid_sale(gateway, api)
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[]))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, batchList=[{"batchId": "9001"}]))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[
        unsettled_capture(transactionStatus="settledSuccessfully")]))
    api.add(responses.POST, NOTIFY_URL, json={"processed": 1, "errorcode": "", "errormessage": ""})
    run_once(services)
    assert payment_row(services, token).state == "completed"
    assert json.loads(api.calls[-1].request.body)["transactionid"] == "6055"
    assert sent(api, 2)["getTransactionListRequest"]["batchId"] == "9001"


def test_case_03_the_unsettled_list_is_read_to_its_last_page(api):
    page = [{"transId": str(n), "invoiceNumber": "other", "settleAmount": 1, "transactionStatus": "capturedPendingSettlement"}
            for n in range(1000)]
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=page))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[unsettled_capture()]))
    result = AuthorizeNetProcessor().find_sale(attempt_lookup())
    assert result.found is Found.FOUND and result.charge.processor_transaction_id == "6055"  # type: ignore[union-attr]
    assert sent(api, 1)["getUnsettledTransactionListRequest"]["paging"] == {"limit": "1000", "offset": "2"}


def test_case_04_an_empty_invoice_is_looked_up_by_the_order_id_the_sale_sent(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[unsettled_capture(invoiceNumber="123")]))
    lookup = replace(attempt_lookup(), invoice="", orderid=123)
    result = AuthorizeNetProcessor().find_sale(lookup)
    assert result.found is Found.FOUND and result.charge.processor_transaction_id == "6055"  # type: ignore[union-attr]


HELD = {"responseCode": "4", "authCode": "A1", "transId": "6077", "messages": [{"code": "253", "description": "held"}]}


def test_case_05_a_held_sale_that_could_not_be_declined_is_not_recorded_declined(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(HELD))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, FAILED_TOP))
    with pytest.raises(OutcomeUnknown) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert "6077 is held for review and could not be declined" in caught.value.merchant_message


def test_case_05_a_held_sale_is_seen_by_the_crash_lookup_as_unknown(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[
        unsettled_capture(transactionStatus="FDSPendingReview")]))
    result = AuthorizeNetProcessor().find_sale(attempt_lookup())
    assert result.found is Found.UNKNOWN and "FDSPendingReview" in result.reason


def test_case_05_a_duplicate_whose_original_is_held_declines_the_original(api):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted.",
                                                         transId="6077"))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transaction={"transId": "6077",
                                                                           "transactionStatus": "FDSPendingReview"}))
    api.add(responses.POST, PRODUCTION_URL, body=answer({"transId": "6077"}))
    with pytest.raises(CardDeclined):
        AuthorizeNetProcessor().sale(sale_request())
    assert sent(api, 2)["updateHeldTransactionRequest"]["heldTransactionRequest"] == {"action": "decline", "refTransId": "6077"}


def test_case_12_details_api_disabled_is_not_called_refused_credentials(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, {"resultCode": "Error", "message": [
        {"code": "E00011", "text": "Access denied. You do not have permissions to call the Transaction Details API."}]}))
    with pytest.raises(AdjustmentRefused) as caught:
        AuthorizeNetProcessor().is_settled(charge_ref(), CREDENTIALS)
    assert not isinstance(caught.value, MerchantAuthenticationError)
    assert "Transaction Details API is not enabled" in caught.value.merchant_message


def test_case_12_card_numbers_longer_than_16_digits_are_not_sent(api):
    card = Card(number="6011000990139424123", exp_month=7, exp_year=2031, cvc=CVC, holder="Ada", brand="discover")
    with pytest.raises(CardDeclined) as caught:
        AuthorizeNetProcessor().sale(replace(sale_request(), card=card))
    assert caught.value.code == "card_not_supported" and len(api.calls) == 0


@pytest.mark.parametrize("code, text", [("8", "The credit card has expired."), ("6", "The credit card number is invalid.")])
def test_case_12_card_reasons_that_arrive_with_response_code_3_are_declines(api, code, text):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", code, text))
    with pytest.raises(CardDeclined) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert caught.value.merchant_message == text
