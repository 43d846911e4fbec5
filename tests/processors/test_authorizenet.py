"""Authorize.Net connector against answers shaped as in its published API reference (via `responses`)."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest
import requests
import responses

from gateway.cards import Card
from gateway.models import utcnow
from gateway.processors.authorizenet import PRODUCTION_URL, SANDBOX_URL, AuthorizeNetProcessor, decimal_amount, ref_id
from gateway.processors.base import (
    AdjustmentRefused,
    CardDeclined,
    ChargeRef,
    Found,
    MerchantAuthenticationError,
    OutcomeUnknown,
    ProcessorError,
    ProcessorUnavailable,
    SaleLookup,
    SaleRequest,
)
from gateway.vault import Credentials

NUMBER, CVC = "4111111111111111", "987"
CREDENTIALS = Credentials("5KP3u95bQpv", "346HZ32z3fP4hTG2")
OK = {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}
FAILED = {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}


def sale_request(test_mode: bool = False, reference: str = "ps12a1", invoice: str = "AB-12234") -> SaleRequest:
    card = Card(number=NUMBER, exp_month=7, exp_year=2031, cvc=CVC, holder="Ada Shopper", brand="visa")
    return SaleRequest(amount=12312, currency="USD", card=card, credentials=CREDENTIALS, reference=reference,
                       invoice=invoice, orderid=123, test_mode=test_mode, email="ada@example.com")


def charge_ref() -> ChargeRef:
    return ChargeRef("60123456789", 12312, "USD", "1111", 7, 2031)


def answer(transaction_response: dict | None = None, messages: dict = OK, **extra) -> bytes:
    body = {**({"transactionResponse": transaction_response} if transaction_response is not None else {}),
            "refId": "ps12a1", "messages": messages, **extra}
    return b"\xef\xbb\xbf" + json.dumps(body).encode()  # Authorize.Net answers start with a BOM


def approved(trans_id: str = "60123456789") -> bytes:
    return answer({"responseCode": "1", "authCode": "HW617E", "transId": trans_id, "accountNumber": "XXXX1111",
                   "accountType": "Visa", "messages": [{"code": "1", "description": "This transaction has been approved."}]})


def refused(response_code: str, code: str, text: str, messages: dict = FAILED, **extra) -> bytes:
    return answer({"responseCode": response_code, "authCode": "", "transId": "0", **extra,
                   "errors": [{"errorCode": code, "errorText": text}]}, messages)


@pytest.fixture
def api():  # type: ignore[no-untyped-def]
    with responses.RequestsMock() as mock:
        yield mock


def sent(api, index: int = 0) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(api.calls[index].request.body)


def test_approved_sale_sends_what_the_reference_asks(api):
    api.add(responses.POST, PRODUCTION_URL, body=approved())
    charge = AuthorizeNetProcessor().sale(sale_request())
    assert (charge.processor_transaction_id, charge.amount, charge.card_last4, charge.card_brand) == ("60123456789", 12312, "1111", "visa")
    body = sent(api)["createTransactionRequest"]
    assert list(body) == ["merchantAuthentication", "refId", "transactionRequest"]
    assert body["merchantAuthentication"] == {"name": "5KP3u95bQpv", "transactionKey": "346HZ32z3fP4hTG2"}
    assert body["refId"] == "ps12a1"
    transaction = body["transactionRequest"]
    assert list(transaction)[:4] == ["transactionType", "amount", "currencyCode", "payment"]
    assert transaction["transactionType"] == "authCaptureTransaction" and transaction["amount"] == "123.12"
    assert transaction["payment"]["creditCard"] == {"cardNumber": NUMBER, "expirationDate": "2031-07", "cardCode": CVC}
    assert transaction["order"]["invoiceNumber"] == "AB-12234"
    assert transaction["transactionSettings"]["setting"] == [{"settingName": "allowPartialAuth", "settingValue": "false"},
                                                             {"settingName": "duplicateWindow", "settingValue": "300"}]


def test_long_invoice_and_reference_are_cut_to_the_api_limits(api):
    api.add(responses.POST, PRODUCTION_URL, body=approved())
    AuthorizeNetProcessor().sale(sale_request(reference="r" * 40, invoice="INV-" + "9" * 30))
    body = sent(api)["createTransactionRequest"]
    assert len(body["refId"]) == 20 and body["refId"] == ref_id("r" * 40)
    assert body["transactionRequest"]["order"]["invoiceNumber"] == ("INV-" + "9" * 30)[-20:]


@pytest.mark.parametrize("test_mode, forced, url", [(True, False, SANDBOX_URL), (False, True, SANDBOX_URL),
                                                    (False, False, PRODUCTION_URL)])
def test_endpoint_follows_testmode_and_configuration(api, test_mode, forced, url):
    api.add(responses.POST, url, body=approved())
    AuthorizeNetProcessor(force_test_mode=forced).sale(sale_request(test_mode=test_mode))
    assert api.calls[0].request.url == url


@pytest.mark.parametrize(
    "code, text, shopper",
    [("2", "This transaction has been declined.", "Your card was declined."),
     ("8", "The credit card has expired.", "Your card has expired."),  # arrives with responseCode 3
     ("65", "This transaction has been declined.", "security code is incorrect"),
     ("27", "The transaction has been declined because of an AVS mismatch.", "billing address")],
)
def test_declines_speak_to_the_shopper(api, code, text, shopper):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3" if code == "8" else "2", code, text))
    with pytest.raises(CardDeclined) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert shopper in caught.value.message
    assert caught.value.merchant_message == text


def test_authentication_failure_at_top_level_only(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, {"resultCode": "Error", "message": [
        {"code": "E00007", "text": "User authentication failed due to invalid authentication values."}]}))
    with pytest.raises(MerchantAuthenticationError) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert "invalid authentication values" in caught.value.merchant_message


def test_error_carried_only_in_the_transaction_response(api):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "19", "An error occurred during processing.", OK))
    with pytest.raises(ProcessorError) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert caught.value.code == "authorizenet_19" and "error 19" in caught.value.merchant_message


def test_held_for_review_is_declined_at_the_processor_and_to_the_shopper(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer({"responseCode": "4", "authCode": "A1", "transId": "6077",
                                                         "messages": [{"code": "253", "description": "held"}]}))
    api.add(responses.POST, PRODUCTION_URL, body=answer({"transId": "6077"}))
    with pytest.raises(CardDeclined) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert caught.value.code == "held_for_review"
    assert sent(api, 1)["updateHeldTransactionRequest"]["heldTransactionRequest"] == {"action": "decline", "refTransId": "6077"}


def test_timeout_then_duplicate_answer_returns_the_original_charge_once(api):
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted.",
                                                         authCode="HW617E", transId="60123456789"))
    api.add(responses.POST, PRODUCTION_URL, body=details("capturedPendingSettlement"))
    charge = AuthorizeNetProcessor().sale(sale_request())
    assert charge.processor_transaction_id == "60123456789"
    assert sent(api, 0) == sent(api, 1)  # the same request: the duplicate window applies
    assert sent(api, 2)["getTransactionDetailsRequest"]["transId"] == "60123456789"  # and the original is checked
    assert len(api.calls) == 3


def details(status: str) -> bytes:
    return answer(None, transaction={"transId": "60123456789", "transactionStatus": status})


def test_duplicate_naming_a_transaction_that_was_not_captured_is_a_decline(api):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted.",
                                                         authCode="HW617E", transId="60123456789"))
    api.add(responses.POST, PRODUCTION_URL, body=details("declined"))
    with pytest.raises(CardDeclined):
        AuthorizeNetProcessor().sale(sale_request())


def test_duplicate_that_cannot_be_checked_is_an_unknown_outcome(api):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted.",
                                                         authCode="HW617E", transId="60123456789"))
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    with pytest.raises(OutcomeUnknown):
        AuthorizeNetProcessor().sale(sale_request())


def test_account_in_test_mode_is_not_taken_for_a_charge(api):
    api.add(responses.POST, PRODUCTION_URL, body=approved("0"))
    with pytest.raises(MerchantAuthenticationError) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert "Test Mode" in caught.value.merchant_message


def test_processor_text_quoting_the_card_is_redacted(api):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "E00003", f"The value '{NUMBER}' is invalid; cvc {CVC}."))
    with pytest.raises(ProcessorError) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert NUMBER not in caught.value.merchant_message and CVC not in caught.value.merchant_message


def test_timeout_then_first_real_answer_is_used(api):
    api.add(responses.POST, PRODUCTION_URL, body=requests.ConnectionError())
    api.add(responses.POST, PRODUCTION_URL, body=approved("777"))
    assert AuthorizeNetProcessor().sale(sale_request()).processor_transaction_id == "777"


def test_duplicate_of_a_declined_sale_is_a_decline(api):
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted."))
    with pytest.raises(CardDeclined) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert caught.value.code == "duplicate"


@pytest.mark.parametrize("failure", [requests.Timeout(), requests.ConnectionError()])
def test_no_answer_twice_is_an_unknown_outcome(api, failure, caplog):
    caplog.set_level(logging.DEBUG)
    api.add(responses.POST, PRODUCTION_URL, body=failure)
    api.add(responses.POST, PRODUCTION_URL, body=failure)
    with pytest.raises(OutcomeUnknown) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert "unknown" in caught.value.merchant_message
    for secret in (NUMBER, CVC, CREDENTIALS.secret):
        assert secret not in caplog.text and secret not in str(caught.value) and secret not in caught.value.merchant_message


@pytest.mark.parametrize("body, status", [(b"\xef\xbb\xbf<html>gateway timeout</html>", 200), (b"", 502), (b"[]", 200)])
def test_unreadable_answers_twice_are_an_unknown_outcome(api, body, status):
    api.add(responses.POST, PRODUCTION_URL, body=body, status=status)
    api.add(responses.POST, PRODUCTION_URL, body=body, status=status)
    with pytest.raises(OutcomeUnknown):
        AuthorizeNetProcessor().sale(sale_request())


def test_void(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer({"responseCode": "1", "transId": "60123456789"}))
    adjustment = AuthorizeNetProcessor().void(charge_ref(), CREDENTIALS)
    assert (adjustment.kind, adjustment.amount) == ("void", 12312)
    assert sent(api)["createTransactionRequest"]["transactionRequest"] == {
        "transactionType": "voidTransaction", "refTransId": "60123456789"}


def test_refund_sends_last_four_and_masked_expiry(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer({"responseCode": "1", "transId": "60999"}))
    adjustment = AuthorizeNetProcessor().refund(charge_ref(), 500, CREDENTIALS)
    assert (adjustment.processor_transaction_id, adjustment.amount, adjustment.kind) == ("60999", 500, "refund")
    transaction = sent(api)["createTransactionRequest"]["transactionRequest"]
    assert transaction == {"transactionType": "refundTransaction", "amount": "5.00",
                           "payment": {"creditCard": {"cardNumber": "1111", "expirationDate": "XXXX"}},
                           "refTransId": "60123456789"}


def test_refund_refused(api):
    api.add(responses.POST, PRODUCTION_URL, body=refused(
        "3", "54", "The referenced transaction does not meet the criteria for issuing a credit."))
    with pytest.raises(AdjustmentRefused) as caught:
        AuthorizeNetProcessor().refund(charge_ref(), 500, CREDENTIALS)
    assert "criteria for issuing a credit" in caught.value.merchant_message


@pytest.mark.parametrize("status, settled", [("settledSuccessfully", True), ("capturedPendingSettlement", False),
                                             ("voided", False), ("refundSettledSuccessfully", False)])
def test_is_settled(api, status, settled):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transaction={"transId": "1", "transactionStatus": status}))
    assert AuthorizeNetProcessor().is_settled(charge_ref(), CREDENTIALS) is settled
    assert sent(api)["getTransactionDetailsRequest"]["transId"] == "60123456789"


def test_find_sale_after_a_crash_uses_the_unsettled_list(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[
        listed("1", "declined"), listed("2", "capturedPendingSettlement")]))
    lookup = attempt_lookup()
    result = AuthorizeNetProcessor().find_sale(lookup)
    assert result.found is Found.FOUND and result.charge is not None
    assert (result.charge.processor_transaction_id, result.charge.card_last4, result.charge.card_brand) == ("2", "1111", "visa")


def test_find_sale_finds_nothing_only_after_reading_everything(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[]))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, batchList=[{"batchId": "77"}]))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[]))
    lookup = SaleLookup("ps1a1", "AB-1", 100, "USD", CREDENTIALS, submitted_at=utcnow() - timedelta(days=2),
                        card_last4="1111")
    assert AuthorizeNetProcessor().find_sale(lookup).found is Found.ABSENT
    assert sent(api, 2)["getTransactionListRequest"]["batchId"] == "77"


def utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def listed(trans_id: str, status: str, last4: str = "1111", submitted: datetime | None = None,
           invoice: str = "AB-12234") -> dict:
    """A transaction as getUnsettledTransactionList / getTransactionList show it."""
    return {"transId": trans_id, "submitTimeUTC": utc_text(submitted or utcnow() - timedelta(minutes=4)),
            "transactionStatus": status, "invoiceNumber": invoice, "accountType": "Visa",
            "accountNumber": f"XXXX{last4}", "settleAmount": 123.12}


def attempt_lookup(started: timedelta = timedelta(minutes=5)) -> SaleLookup:
    return SaleLookup("ps12a2", "AB-12234", 12312, "USD", CREDENTIALS, orderid=123, submitted_at=utcnow() - started,
                      card_last4="1111")


def no_settled_batches(api) -> None:  # type: ignore[no-untyped-def]
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, batchList=[]))


# Issue 19, item 1: transport failures after the request may have left.

def test_body_cut_off_mid_stream_is_sent_again_then_an_unknown_outcome(api):
    api.add(responses.POST, PRODUCTION_URL, body=requests.exceptions.ChunkedEncodingError("Connection broken"))
    api.add(responses.POST, PRODUCTION_URL, body=requests.exceptions.ChunkedEncodingError("Connection broken"))
    with pytest.raises(OutcomeUnknown):
        AuthorizeNetProcessor().sale(sale_request())
    assert sent(api, 0) == sent(api, 1)


def test_body_cut_off_then_duplicate_answer_returns_the_original_charge(api):
    api.add(responses.POST, PRODUCTION_URL, body=requests.exceptions.ChunkedEncodingError("Connection broken"))
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted.",
                                                         authCode="HW617E", transId="60123456789"))
    api.add(responses.POST, PRODUCTION_URL, body=details("capturedPendingSettlement"))
    assert AuthorizeNetProcessor().sale(sale_request()).processor_transaction_id == "60123456789"


@pytest.mark.parametrize("failure", [requests.exceptions.ReadTimeout(), requests.exceptions.ContentDecodingError(),
                                     requests.exceptions.RequestException("anything else")])
def test_any_failure_after_sending_twice_is_an_unknown_outcome(api, failure):
    api.add(responses.POST, PRODUCTION_URL, body=failure)
    api.add(responses.POST, PRODUCTION_URL, body=failure)
    with pytest.raises(OutcomeUnknown):
        AuthorizeNetProcessor().sale(sale_request())


def test_connection_refused_twice_is_unavailable_and_nothing_was_charged():
    """Nothing listens: neither request left, so the shopper may simply try again."""
    processor = AuthorizeNetProcessor(url="http://127.0.0.1:9/xml/v1/request.api", timeout=2)
    with pytest.raises(ProcessorUnavailable) as caught:
        processor.sale(sale_request())
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "nothing was sent" in caught.value.merchant_message


def test_find_sale_with_a_body_cut_off_is_unknown(api):
    api.add(responses.POST, PRODUCTION_URL, body=requests.exceptions.ChunkedEncodingError("Connection broken"))
    assert AuthorizeNetProcessor().find_sale(attempt_lookup()).found is Found.UNKNOWN


@pytest.mark.parametrize("operation", ["void", "refund"])
def test_void_or_refund_with_a_body_cut_off_is_an_unknown_outcome(api, operation):
    api.add(responses.POST, PRODUCTION_URL, body=requests.exceptions.ChunkedEncodingError("Connection broken"))
    processor = AuthorizeNetProcessor()
    with pytest.raises(OutcomeUnknown):
        processor.void(charge_ref(), CREDENTIALS) if operation == "void" else processor.refund(charge_ref(), 500, CREDENTIALS)


# Item 2: a duplicate answer without the original after a lost answer.

def test_timeout_then_duplicate_without_the_original_is_an_unknown_outcome(api):
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted."))
    with pytest.raises(OutcomeUnknown) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert "may have charged" in caught.value.merchant_message
    assert len(api.calls) == 2


# Item 3: one table of statuses for the duplicate check and the lookup.

@pytest.mark.parametrize("status", ["approvedReview", "underReview", "authorizedPendingCapture", "settlementError",
                                    "couldNotVoid", "somethingNew"])
def test_duplicate_of_an_original_still_in_flight_is_an_unknown_outcome(api, status):
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    api.add(responses.POST, PRODUCTION_URL, body=refused("3", "11", "A duplicate transaction has been submitted.",
                                                         authCode="HW617E", transId="60123456789"))
    api.add(responses.POST, PRODUCTION_URL, body=details(status))
    with pytest.raises(OutcomeUnknown) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert status in caught.value.merchant_message


@pytest.mark.parametrize("status", ["couldNotVoid", "approvedReview", "authorizedPendingCapture", "settlementError"])
def test_find_sale_of_an_original_still_in_flight_is_unknown(api, status):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[listed("7", status)]))
    result = AuthorizeNetProcessor().find_sale(attempt_lookup())
    assert result.found is Found.UNKNOWN and status in result.reason


# Item 4: the lookup matches the card, the time and the attempt.

def test_find_sale_does_not_adopt_another_cards_charge_of_the_same_order(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[
        listed("5", "capturedPendingSettlement", last4="0002")]))
    no_settled_batches(api)
    assert AuthorizeNetProcessor().find_sale(attempt_lookup()).found is Found.ABSENT


def test_find_sale_does_not_adopt_a_day_old_charge_of_the_same_order(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[]))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, batchList=[{"batchId": "77"}]))
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[
        listed("4", "settledSuccessfully", submitted=utcnow() - timedelta(days=1))]))
    assert AuthorizeNetProcessor().find_sale(attempt_lookup()).found is Found.ABSENT


def test_second_attempt_of_an_order_is_not_the_first_attempts_charge(api):
    """Same card, same amount, same invoice, ten minutes before attempt 2 began: attempt 1's, not ours
    (the sandbox, which knows each attempt's reference, says absent too)."""
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[
        listed("3", "capturedPendingSettlement", submitted=utcnow() - timedelta(minutes=15))]))
    no_settled_batches(api)
    assert AuthorizeNetProcessor().find_sale(attempt_lookup()).found is Found.ABSENT


def test_find_sale_allows_a_little_clock_skew(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[
        listed("2", "capturedPendingSettlement", submitted=utcnow() - timedelta(minutes=5, seconds=30))]))
    assert AuthorizeNetProcessor().find_sale(attempt_lookup()).found is Found.FOUND


def test_find_sale_does_not_say_absent_of_an_attempt_too_recent_to_be_listed(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[]))
    no_settled_batches(api)
    result = AuthorizeNetProcessor().find_sale(attempt_lookup(started=timedelta(seconds=30)))
    assert result.found is Found.UNKNOWN and "too recent" in result.reason


def test_find_sale_of_a_listing_without_card_or_time_is_unknown(api):
    item = {key: value for key, value in listed("2", "capturedPendingSettlement").items() if key != "submitTimeUTC"}
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[item]))
    assert AuthorizeNetProcessor().find_sale(attempt_lookup()).found is Found.UNKNOWN


def test_find_sale_without_the_attempts_card_is_unknown():
    lookup = SaleLookup("ps12a1", "AB-12234", 12312, "USD", CREDENTIALS, submitted_at=utcnow() - timedelta(minutes=5))
    assert AuthorizeNetProcessor().find_sale(lookup).found is Found.UNKNOWN


# Item 5: refused credentials.

@pytest.mark.parametrize("code", ["E00005", "E00006", "E00007", "E00010"])
def test_credential_error_codes_are_refused_credentials_not_declines(api, code):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, {"resultCode": "Error", "message": [
        {"code": code, "text": "The merchant login ID or key is invalid."}]}))
    with pytest.raises(MerchantAuthenticationError) as caught:
        AuthorizeNetProcessor().sale(sale_request())
    assert "refused the API Login ID" in caught.value.merchant_message
    assert "declined" not in caught.value.message


@pytest.mark.parametrize("code", ["E00005", "E00010"])
def test_credential_error_codes_refuse_a_void(api, code):
    api.add(responses.POST, PRODUCTION_URL, body=answer(None, {"resultCode": "Error", "message": [
        {"code": code, "text": "User authentication failed."}]}))
    with pytest.raises(MerchantAuthenticationError):
        AuthorizeNetProcessor().void(charge_ref(), CREDENTIALS)


# Item 6: an object with neither messages nor transactionResponse.

@pytest.mark.parametrize("body", [b"{}", b'{"refId": "ps12a1"}', b'{"messages": null}'])
def test_answer_without_messages_or_transaction_is_an_unknown_outcome(api, body):
    api.add(responses.POST, PRODUCTION_URL, body=body)
    api.add(responses.POST, PRODUCTION_URL, body=body)
    with pytest.raises(OutcomeUnknown):
        AuthorizeNetProcessor().sale(sale_request())


def test_answer_without_messages_or_transaction_then_an_approval_is_the_charge(api):
    api.add(responses.POST, PRODUCTION_URL, body=b"\xef\xbb\xbf{}")
    api.add(responses.POST, PRODUCTION_URL, body=approved("778"))
    assert AuthorizeNetProcessor().sale(sale_request()).processor_transaction_id == "778"


def test_sale_answer_without_a_result_code_is_an_unknown_outcome(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer({"transId": "0"}))
    with pytest.raises(OutcomeUnknown):
        AuthorizeNetProcessor().sale(sale_request())


def test_void_answered_by_an_empty_object_is_an_unknown_outcome(api):
    api.add(responses.POST, PRODUCTION_URL, body=b"{}")
    with pytest.raises(OutcomeUnknown):
        AuthorizeNetProcessor().void(charge_ref(), CREDENTIALS)


# AVS and CVV results of an approval.

def test_approval_carries_the_avs_and_cvv_results(api):
    api.add(responses.POST, PRODUCTION_URL, body=answer({
        "responseCode": "1", "authCode": "HW617E", "avsResultCode": "Y", "cvvResultCode": "M", "transId": "60123456789",
        "accountNumber": "XXXX1111", "accountType": "Visa",
        "messages": [{"code": "1", "description": "This transaction has been approved."}]}))
    charge = AuthorizeNetProcessor().sale(sale_request())
    assert (charge.avs_result, charge.cvv_result) == ("Y", "M")


def test_amounts_use_the_currency_minor_units():
    assert (decimal_amount(12312, "USD"), decimal_amount(5, "USD"), decimal_amount(500, "JPY")) == ("123.12", "0.05", "500")


def test_gateway_flow_with_authorize_net(settings, api):
    """Checkout with testmode, pay, and refund through the whole gateway with Authorize.Net configured."""
    from dataclasses import replace

    from gateway import create_app

    from ..flow_helpers import open_session, pay
    from ..protocol_helpers import NOTIFY_URL, post_json, signed_refund

    app = create_app(replace(settings, processor="authorizenet"))
    client = app.test_client()
    api.add(responses.POST, SANDBOX_URL, body=approved("4000111"))
    api.add(responses.POST, NOTIFY_URL, json={"processed": 1, "errorcode": "", "errormessage": ""})
    token, csrf = open_session(client, testmode=1)
    assert pay(client, token, csrf, number=NUMBER, cvc=CVC).status_code == 303
    assert json.loads(api.calls[1].request.body)["transactionid"] == "4000111"

    api.add(responses.POST, SANDBOX_URL, body=details("settledSuccessfully"))  # a partial refund needs a settled charge
    api.add(responses.POST, SANDBOX_URL, body=answer({"responseCode": "1", "transId": "4000222"}))
    refund = post_json(client, "/post-order", signed_refund(transactionid="4000111", type="refund", amounttotal=2000))
    assert refund["approved"] == 1 and refund["transactionid"] == "4000222"
    request = json.loads(api.calls[-1].request.body)["createTransactionRequest"]
    assert request["merchantAuthentication"] == {"name": "user1", "transactionKey": "password1"}
    assert request["transactionRequest"]["payment"]["creditCard"]["cardNumber"] == "1111"
    app.extensions["gateway"].db.dispose()


def test_unknown_outcome_waits_for_the_lookup_instead_of_reopening(settings, api):
    """No answer twice: the shopper waits, and the worker finds the charge and tells the store."""
    from dataclasses import replace
    from datetime import timedelta

    from sqlalchemy import update

    from gateway import create_app
    from gateway.jobs.rounds import run_once
    from gateway.models import Payment, utcnow

    from ..flow_helpers import open_session, pay, payment_row
    from ..protocol_helpers import NOTIFY_URL

    app = create_app(replace(settings, processor="authorizenet"))
    services = app.extensions["gateway"]
    client = app.test_client()
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    api.add(responses.POST, PRODUCTION_URL, body=requests.Timeout())
    token, csrf = open_session(client)
    waiting = pay(client, token, csrf, number=NUMBER, cvc=CVC)
    assert waiting.status_code == 202 and "Processing your payment" in waiting.get_data(as_text=True)
    assert payment_row(services, token).state == "authorizing"

    api.add(responses.POST, PRODUCTION_URL, body=answer(None, transactions=[listed("6055", "capturedPendingSettlement")]))
    api.add(responses.POST, NOTIFY_URL, json={"processed": 1, "errorcode": "", "errormessage": ""})
    with services.db.transaction() as session:
        session.execute(update(Payment).values(updated_at=utcnow() - timedelta(minutes=5)))
    run_once(services)
    assert payment_row(services, token).state == "completed"
    assert json.loads(api.calls[-1].request.body)["transactionid"] == "6055"
    services.db.dispose()
