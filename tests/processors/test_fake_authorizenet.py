"""The Authorize.Net stand-in is only worth testing against if it refuses what Authorize.Net
refuses and answers what it answers: its own strictness, request by request."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Iterator

import pytest
import requests
import responses

from .fake_authorizenet import BOM, TRIGGER_CARD, Account, FakeAuthorizeNet, Fault, ManualClock

APPROVE, DECLINE = "4242424242424242", "4000000000000002"
URL = "https://apitest.authorize.net/xml/v1/request.api"


def auth(login: str = "merchant", key: str = "key") -> dict[str, str]:
    return {"name": login, "transactionKey": key}


def sale_body(number: str = APPROVE, amount: str = "50.00", invoice: str = "INV-1", partial: bool = False,
              login: str = "merchant", key: str = "key", **card: str) -> dict[str, Any]:
    """A sale as the schema orders it (and as the gateway sends it)."""
    return {"createTransactionRequest": {
        "merchantAuthentication": auth(login, key),
        "refId": "ps1a1",
        "transactionRequest": {
            "transactionType": "authCaptureTransaction",
            "amount": amount,
            "currencyCode": "USD",
            "payment": {"creditCard": {"cardNumber": number, "expirationDate": "2039-12", "cardCode": "123", **card}},
            "order": {"invoiceNumber": invoice, "description": "3dcart order 7"},
            "customer": {"email": "ada@example.com"},
            "transactionSettings": {"setting": [
                {"settingName": "allowPartialAuth", "settingValue": "true" if partial else "false"},
                {"settingName": "duplicateWindow", "settingValue": "300"},
            ]},
        },
    }}


def ask(fake: FakeAuthorizeNet, payload: dict[str, Any]) -> dict[str, Any]:
    reply = fake.answer(json.dumps(payload))
    assert reply.status == 200 and reply.body.startswith(BOM), reply
    answer: dict[str, Any] = json.loads(reply.body[len(BOM):])
    return answer


def transaction(kind: str, ref_trans_id: str, amount: str = "50.00", last4: str = "4242") -> dict[str, Any]:
    request: dict[str, Any] = {"transactionType": kind}
    if kind == "refundTransaction":
        request |= {"amount": amount, "payment": {"creditCard": {"cardNumber": last4, "expirationDate": "XXXX"}}}
    return {"createTransactionRequest": {"merchantAuthentication": auth(),
                                         "transactionRequest": {**request, "refTransId": ref_trans_id}}}


def listing(name: str, **body: Any) -> dict[str, Any]:
    return {name: {"merchantAuthentication": auth(), **body}}


def result(answer: dict[str, Any]) -> tuple[str, str]:
    message = answer["messages"]["message"][0]
    return answer["messages"]["resultCode"], message["code"]


def reason(answer: dict[str, Any]) -> tuple[str, str]:
    response = answer["transactionResponse"]
    item = (response.get("errors") or response.get("messages"))[0]
    return response["responseCode"], item.get("errorCode") or item.get("code")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FakeAuthorizeNet:
    return FakeAuthorizeNet(clock=clock)


def test_an_approved_sale_answers_like_authorize_net(fake: FakeAuthorizeNet) -> None:
    answer = ask(fake, sale_body())
    response = answer["transactionResponse"]
    assert result(answer) == ("Ok", "I00001") and answer["refId"] == "ps1a1"
    assert (response["responseCode"], response["accountNumber"], response["accountType"]) == ("1", "XXXX4242", "Visa")
    assert response["transId"] != "0" and response["avsResultCode"] == "Y" and response["cvvResultCode"] == "M"


def test_elements_out_of_schema_order_are_refused(fake: FakeAuthorizeNet) -> None:
    body = sale_body()
    request = body["createTransactionRequest"]["transactionRequest"]
    request["amount"] = request.pop("amount")  # now after transactionSettings
    assert result(ask(fake, body)) == ("Error", "E00003")
    assert not fake.transactions


def test_an_element_the_schema_does_not_know_is_refused(fake: FakeAuthorizeNet) -> None:
    body = sale_body()
    body["createTransactionRequest"]["transactionRequest"]["order"]["invoice"] = "x"
    assert result(ask(fake, body)) == ("Error", "E00003")


@pytest.mark.parametrize("path, value", [
    (("refId",), "r" * 21),
    (("merchantAuthentication", "name"), "n" * 26),
    (("merchantAuthentication", "transactionKey"), "k" * 17),
    (("transactionRequest", "order", "invoiceNumber"), "i" * 21),
    (("transactionRequest", "order", "description"), "d" * 256),
    (("transactionRequest", "customer", "email"), "e" * 256),
    (("transactionRequest", "payment", "creditCard", "cardCode"), "12"),
    (("transactionRequest", "payment", "creditCard", "cardCode"), "12345"),
    (("transactionRequest", "payment", "creditCard", "cardNumber"), "4" * 17),
    (("transactionRequest", "amount"), "fifty"),
    (("transactionRequest", "currencyCode"), "usd"),
])
def test_values_beyond_the_schemas_lengths_and_formats_are_refused(fake: FakeAuthorizeNet, path: tuple[str, ...],
                                                                   value: str) -> None:
    body = sale_body()
    parent = body["createTransactionRequest"]
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    answer = ask(fake, body)
    assert result(answer) == ("Error", "E00003") and "transactionResponse" not in answer
    assert not fake.transactions


def test_a_card_number_of_fewer_than_13_digits_is_reason_6(fake: FakeAuthorizeNet) -> None:
    assert reason(ask(fake, sale_body(number="424242424242"))) == ("3", "6")


def test_an_amount_with_three_decimals_is_reason_5(fake: FakeAuthorizeNet) -> None:
    assert reason(ask(fake, sale_body(amount="50.001"))) == ("3", "5")


def test_a_body_that_is_not_json_is_refused(fake: FakeAuthorizeNet) -> None:
    reply = fake.answer("{createTransactionRequest")
    assert json.loads(reply.body[len(BOM):])["messages"]["resultCode"] == "Error"


@pytest.mark.parametrize("login, key, code", [
    ("", "key", "E00006"), ("merchant", "", "E00005"), ("merchant", "wrong", "E00007"), ("stranger", "key", "E00007"),
])
def test_the_login_and_the_transaction_key_are_both_checked(fake: FakeAuthorizeNet, login: str, key: str,
                                                            code: str) -> None:
    assert result(ask(fake, sale_body(login=login, key=key))) == ("Error", code)
    assert not fake.transactions


def test_an_api_user_without_permission_is_e00010(fake: FakeAuthorizeNet) -> None:
    fake.accounts["merchant"].permitted = False
    assert result(ask(fake, sale_body())) == ("Error", "E00010")


def test_lookups_without_the_transaction_details_api_are_e00011_but_sales_go_through(fake: FakeAuthorizeNet) -> None:
    fake.accounts["merchant"].details_api = False
    trans_id = ask(fake, sale_body())["transactionResponse"]["transId"]
    assert result(ask(fake, listing("getTransactionDetailsRequest", transId=trans_id))) == ("Error", "E00011")
    assert result(ask(fake, listing("getUnsettledTransactionListRequest"))) == ("Error", "E00011")


def test_the_same_sale_within_the_duplicate_window_is_error_11_naming_the_original(fake: FakeAuthorizeNet,
                                                                                   clock: ManualClock) -> None:
    original = ask(fake, sale_body())["transactionResponse"]["transId"]
    clock.advance(seconds=299)
    answer = ask(fake, sale_body())
    assert reason(answer) == ("3", "11") and answer["transactionResponse"]["transId"] == original
    assert len(fake.charges()) == 1
    clock.advance(seconds=2)
    assert reason(ask(fake, sale_body())) == ("1", "1") and len(fake.charges()) == 2


def test_another_invoice_or_card_is_not_a_duplicate(fake: FakeAuthorizeNet) -> None:
    ask(fake, sale_body())
    assert reason(ask(fake, sale_body(invoice="INV-2"))) == ("1", "1")
    assert reason(ask(fake, sale_body(number="5555555555554444"))) == ("1", "1")


def test_a_decline_carries_a_real_trans_id_and_is_listed_as_declined(fake: FakeAuthorizeNet,
                                                                      clock: ManualClock) -> None:
    answer = ask(fake, sale_body(number=DECLINE))
    assert result(answer) == ("Ok", "I00001") and reason(answer) == ("2", "2")
    trans_id = answer["transactionResponse"]["transId"]
    assert trans_id != "0"
    details = ask(fake, listing("getTransactionDetailsRequest", transId=trans_id))["transaction"]
    assert details["transactionStatus"] == "declined"


def test_a_held_sale_waits_for_the_merchant_until_update_held_transaction(fake: FakeAuthorizeNet) -> None:
    answer = ask(fake, sale_body(number=TRIGGER_CARD, amount="252.00"))
    assert reason(answer) == ("4", "252")
    trans_id = answer["transactionResponse"]["transId"]
    status = ask(fake, listing("getTransactionDetailsRequest", transId=trans_id))["transaction"]["transactionStatus"]
    assert status == "FDSPendingReview" and not fake.charges()
    held = {"action": "decline", "refTransId": trans_id}
    assert result(ask(fake, listing("updateHeldTransactionRequest", heldTransactionRequest=held))) == ("Ok", "I00001")
    assert fake.transactions[trans_id].status == "declined"
    again = ask(fake, listing("updateHeldTransactionRequest", heldTransactionRequest=held))
    assert reason(again) == ("3", "16")


def test_a_scripted_hold_holds_the_next_sale(fake: FakeAuthorizeNet) -> None:
    fake.script("sale", Fault.held())
    assert reason(ask(fake, sale_body())) == ("4", "252")
    assert reason(ask(fake, sale_body(invoice="INV-2"))) == ("1", "1")


def test_partial_authorization_only_when_the_request_allows_it(fake: FakeAuthorizeNet) -> None:
    refused = ask(fake, sale_body(number=TRIGGER_CARD, amount="295.00"))
    assert reason(refused) == ("2", "2")
    partial = ask(fake, sale_body(number=TRIGGER_CARD, amount="295.00", invoice="INV-2", partial=True))
    assert reason(partial) == ("4", "295") and partial["transactionResponse"]["splitTenderId"]


def test_test_mode_approves_with_trans_id_zero_and_keeps_nothing(fake: FakeAuthorizeNet) -> None:
    fake.accounts["merchant"] = Account("key", test_mode=True)
    response = ask(fake, sale_body())["transactionResponse"]
    assert (response["responseCode"], response["transId"]) == ("1", "0") and not fake.transactions


def test_refunds_check_the_last_four_digits_the_balance_and_the_120_days(fake: FakeAuthorizeNet,
                                                                         clock: ManualClock) -> None:
    trans_id = ask(fake, sale_body())["transactionResponse"]["transId"]
    assert reason(ask(fake, transaction("refundTransaction", trans_id, "10.00"))) == ("3", "54")  # not settled
    fake.settle()
    assert reason(ask(fake, transaction("refundTransaction", trans_id, "10.00", last4="1111"))) == ("3", "54")
    assert reason(ask(fake, transaction("refundTransaction", trans_id, "50.01"))) == ("3", "55")
    assert reason(ask(fake, transaction("refundTransaction", trans_id, "30.00"))) == ("1", "1")
    assert reason(ask(fake, transaction("refundTransaction", trans_id, "20.01"))) == ("3", "55")
    clock.advance(days=121)
    assert reason(ask(fake, transaction("refundTransaction", trans_id, "10.00"))) == ("3", "54")


def test_a_second_void_answers_310_and_a_void_after_settlement_16(fake: FakeAuthorizeNet) -> None:
    first = ask(fake, sale_body())["transactionResponse"]["transId"]
    assert reason(ask(fake, transaction("voidTransaction", first))) == ("1", "1")
    assert reason(ask(fake, transaction("voidTransaction", first))) == ("1", "310")
    second = ask(fake, sale_body(invoice="INV-2"))["transactionResponse"]["transId"]
    fake.settle()
    assert reason(ask(fake, transaction("voidTransaction", second))) == ("3", "16")


def test_an_unknown_transaction_is_e00040(fake: FakeAuthorizeNet) -> None:
    assert result(ask(fake, listing("getTransactionDetailsRequest", transId="123"))) == ("Error", "E00040")


def test_settled_batches_are_searched_over_31_days_at_most(fake: FakeAuthorizeNet, clock: ManualClock) -> None:
    ask(fake, sale_body())
    batch = fake.settle()
    clock.advance(seconds=60)
    now = clock()
    span = {"firstSettlementDate": (now - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastSettlementDate": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    found = ask(fake, listing("getSettledBatchListRequest", **span))
    assert [b["batchId"] for b in found["batchList"]] == [batch.batch_id]
    span["firstSettlementDate"] = (now - timedelta(days=32)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result(ask(fake, listing("getSettledBatchListRequest", **span))) == ("Error", "E00003")
    only_first = {"firstSettlementDate": span["firstSettlementDate"]}
    assert result(ask(fake, listing("getSettledBatchListRequest", **only_first))) == ("Error", "E00003")


def test_lists_page_and_sort_and_say_when_there_is_nothing(fake: FakeAuthorizeNet, clock: ManualClock) -> None:
    ids = [ask(fake, sale_body(invoice=f"INV-{n}"))["transactionResponse"]["transId"] for n in range(5)]
    clock.advance(seconds=60)
    sorting = {"orderBy": "id", "orderDescending": "true"}
    pages = [ask(fake, listing("getUnsettledTransactionListRequest", sorting=sorting,
                               paging={"limit": "2", "offset": str(page)})) for page in (1, 2, 3, 4)]
    assert [[t["transId"] for t in p.get("transactions", [])] for p in pages] == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]
    assert result(pages[3]) == ("Ok", "I00004")
    too_big = {"limit": "1001", "offset": "1"}
    assert result(ask(fake, listing("getUnsettledTransactionListRequest", sorting=sorting, paging=too_big))) == \
        ("Error", "E00003")


def test_a_new_transaction_shows_in_lists_only_after_a_short_delay(fake: FakeAuthorizeNet, clock: ManualClock) -> None:
    ask(fake, sale_body())
    assert "transactions" not in ask(fake, listing("getUnsettledTransactionListRequest"))
    clock.advance(seconds=3)
    assert len(ask(fake, listing("getUnsettledTransactionListRequest"))["transactions"]) == 1


def test_a_scripted_fault_waits_for_its_operation(fake: FakeAuthorizeNet) -> None:
    fake.script("sale", Fault.credentials("E00005"))
    assert result(ask(fake, listing("getUnsettledTransactionListRequest"))) == ("Ok", "I00004")
    assert result(ask(fake, sale_body())) == ("Error", "E00005")


@pytest.fixture(params=["responses", "socket"])
def post(request: pytest.FixtureRequest, fake: FakeAuthorizeNet) -> Iterator[Any]:
    """POST to the stand-in as a ``responses`` callback or served on a loopback port."""
    if request.param == "responses":
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.add_callback(responses.POST, URL, callback=fake.handle)
            yield lambda body, timeout=5.0: requests.post(URL, data=json.dumps(body), timeout=timeout)
        return
    with fake.serve() as url:
        yield lambda body, timeout=5.0: requests.post(url, data=json.dumps(body), timeout=timeout)


def test_a_5xx_before_processing_charges_nothing(fake: FakeAuthorizeNet, post: Any) -> None:
    fake.script("sale", Fault.server_error())
    assert post(sale_body()).status_code == 503 and not fake.transactions


def test_a_body_truncated_after_the_charge_breaks_the_read(fake: FakeAuthorizeNet, post: Any) -> None:
    fake.script("sale", Fault.truncated())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(sale_body())
    assert len(fake.charges()) == 1


@pytest.mark.parametrize("fault, body", [(Fault.malformed(), None), (Fault.empty_object(), {})])
def test_unreadable_answers_come_after_the_charge(fake: FakeAuthorizeNet, post: Any, fault: Fault,
                                                  body: dict[str, Any] | None) -> None:
    fake.script("sale", fault)
    answer = post(sale_body())
    assert answer.status_code == 200 and answer.content.startswith(BOM.encode())
    if body is None:
        with pytest.raises(ValueError):
            json.loads(answer.content.decode("utf-8-sig"))
    else:
        assert json.loads(answer.content.decode("utf-8-sig")) == body
    assert len(fake.charges()) == 1


def test_a_slow_answer_times_the_client_out_after_the_charge(fake: FakeAuthorizeNet, post: Any) -> None:
    fake.script("sale", Fault.slow(0.6))
    with pytest.raises(requests.ReadTimeout):
        post(sale_body(), timeout=0.3)
    assert len(fake.charges()) == 1


def test_a_duplicate_without_trans_id_names_no_transaction(fake: FakeAuthorizeNet, post: Any) -> None:
    fake.script("sale", Fault.duplicate_without_trans_id())
    response = json.loads(post(sale_body()).content.decode("utf-8-sig"))["transactionResponse"]
    assert (response["responseCode"], response["transId"], response["errors"][0]["errorCode"]) == ("3", "0", "11")


def test_only_the_api_path_answers_on_the_socket(fake: FakeAuthorizeNet) -> None:
    with fake.serve() as url:
        assert requests.post(url.replace("/xml/v1/", "/xml/v2/"), data=json.dumps(sale_body()), timeout=5).status_code == 404
    assert not fake.transactions


def test_a_refund_carries_no_invoice_number_unless_sent(fake: FakeAuthorizeNet, clock: ManualClock) -> None:
    trans_id = ask(fake, sale_body())["transactionResponse"]["transId"]
    fake.settle()
    refund_id = ask(fake, transaction("refundTransaction", trans_id, "10.00"))["transactionResponse"]["transId"]
    assert ask(fake, listing("getTransactionDetailsRequest", transId=refund_id))["transaction"]["order"] == \
        {"invoiceNumber": "", "description": ""}
