"""The store emulator plays the platform's part exactly: what it signs, what it checks, what it refuses.

`responses` stands in for the gateway's Checkout and Post-Order URLs; every signature here is
recomputed with hashlib (`md5`), independently of the code under test.
"""
from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from store_emulator import create_emulator_app
from store_emulator.cart import Cart
from store_emulator.store import ACCEPTED, Store

from .protocol_helpers import PRIVATE_KEY, md5

GATEWAY = "http://gateway.test"
STORE = "http://store.test"
PAY_URL = GATEWAY + "/pay"
CART = {"qty-123abc": "2", "qty-asd1-22": "3", "qty-111q-azas": "10", "tax": "10.00", "shipping": "5.00",
        "discount": "10.00"}
CART_TOTAL = 2 * 1200 + 3 * 2200 + 10 * 5 + 1000 + 500 - 1000


@pytest.fixture
def emulator():  # type: ignore[no-untyped-def]
    return create_emulator_app(GATEWAY, PRIVATE_KEY, public_url=STORE).test_client()


def checkout_answer(method: str = "GET", token: str = "tok123", errormessage: str = "", key: str = PRIVATE_KEY,
                    redirecturl: str = PAY_URL) -> dict[str, Any]:
    return {"paymenttoken": token, "redirecturl": redirecturl, "redirectmethod": method,
            "errorcode": "102" if errormessage else "", "errormessage": errormessage,
            "randomkey": "rk1", "signature": md5("rk1", key, token, redirecturl)}


def check_out(emulator, answer: Any = None, form: dict[str, str] | None = None, **gateway: Any):  # type: ignore[no-untyped-def]
    """The shopper presses Check out; returns the emulator's page and the CheckoutRequest it sent."""
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, GATEWAY + "/checkout", **(gateway or {"json": answer or checkout_answer()}))
        page = emulator.post("/checkout", data=form or CART)
        sent = json.loads(mock.calls[0].request.body)
    return page, sent


def completion(sent: dict[str, Any], transactionid: str = "sbx_1", approved: int = 1,
               key: str = PRIVATE_KEY) -> dict[str, Any]:
    """The gateway's CompleteOrderRequest for the order in `sent`."""
    return {"orderid": sent["orderid"], "invoice": sent["invoice"], "amount": sent["amounttotal"],
            "approved": approved, "transactionid": transactionid, "errorcode": "" if approved else "DECLINED",
            "errormessage": "" if approved else "insufficient funds", "randomkey": "r",
            "signature": md5("r", key, sent["orderid"], sent["invoice"], transactionid)}


def notify(emulator, body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return emulator.post("/notify?gw=123", json=body).get_json()


def paid_order(emulator) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    _, sent = check_out(emulator)
    assert notify(emulator, completion(sent))["processed"] == 1
    return sent


def refund_answer(sent: dict[str, Any], transactionid: str = "sbx_r_1", approved: int = 1, key: str = PRIVATE_KEY,
                  errormessage: str = "") -> dict[str, Any]:
    return {"approved": approved, "transactionid": transactionid, "errorcode": "103" if errormessage else "",
            "errormessage": errormessage, "randomkey": "q",
            "signature": md5("q", key, sent["orderid"], sent["invoice"], transactionid)}


def press_refund(emulator, orderid: int, amount: str, answer: dict[str, Any] | None):  # type: ignore[no-untyped-def]
    """The merchant presses Void/Refund; returns the orders page shown after and the RefundRequest sent (if any)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, GATEWAY + "/post-order", json=answer)
        page = emulator.post(f"/admin/orders/{orderid}/refund", data={"amount": amount}, follow_redirects=True)
        sent = json.loads(mock.calls[0].request.body) if mock.calls else None
    return page.get_data(as_text=True), sent


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


# Checkout hand-off

def test_checkout_request_has_every_field_of_the_example_and_is_signed_per_spec(emulator):
    _, sent = check_out(emulator)
    assert set(sent) == {"type", "orderid", "invoice", "email", "billing", "shipping", "currency", "amounttotal",
                         "taxtotal", "shippingtotal", "discount", "items", "username", "password", "cancelurl",
                         "errorurl", "notificationurl", "returnurl", "randomkey", "signature", "testmode"}
    assert sent["signature"] == md5(sent["randomkey"], PRIVATE_KEY, sent["orderid"], sent["invoice"], sent["amounttotal"])
    assert (sent["type"], sent["orderid"], sent["invoice"], sent["currency"]) == ("sale", 1001, "AB-1001", "USD")
    assert (sent["amounttotal"], sent["taxtotal"], sent["shippingtotal"], sent["discount"]) == (CART_TOTAL, 1000, 500, 1000)
    assert [(i["itemid"], i["unitprice"], i["quantity"]) for i in sent["items"]] == [
        ("123abc", 1200, 2), ("asd1-22", 2200, 3), ("111q-azas", 5, 10)]
    assert set(sent["billing"]) == set(sent["shipping"]) == {
        "firstname", "lastname", "company", "address", "address2", "city", "state", "zip", "country", "phone"}
    assert (sent["username"], sent["password"], sent["testmode"]) == ("user1", "password1", False)
    assert sent["errorurl"] == STORE + "/error?error=0"
    assert sent["cancelurl"] == STORE + "/?cancelled=1001"
    assert sent["notificationurl"] == STORE + "/notify?gw=123"


def test_returnurl_carries_gw_orderid_rk_and_the_stores_k_check(emulator):
    _, sent = check_out(emulator)
    returnurl = urlsplit(sent["returnurl"])
    query = {name: values[0] for name, values in parse_qs(returnurl.query).items()}
    assert f"{returnurl.scheme}://{returnurl.netloc}{returnurl.path}" == STORE + "/return"
    assert query["gw"] == "123" and query["orderid"] == "1001"
    assert query["k"] == md5(query["rk"], "store.test", "1", "123")  # rk + domain + store id + gateway id


def test_each_checkout_is_a_new_order_and_testmode_is_passed_on(emulator):
    _, first = check_out(emulator)
    _, second = check_out(emulator, form={**CART, "testmode": "1"})
    assert (first["orderid"], second["orderid"], second["invoice"]) == (1001, 1002, "AB-1002")
    assert second["testmode"] is True and first["randomkey"] != second["randomkey"]


def test_get_redirect_appends_the_payment_token(emulator):
    page, _ = check_out(emulator, checkout_answer(method="GET"))
    assert page.status_code == 302 and page.headers["Location"] == PAY_URL + "?paymenttoken=tok123"
    page, _ = check_out(emulator, checkout_answer(method="GET", token=""))
    assert page.headers["Location"] == PAY_URL


def test_post_redirect_is_a_form_that_posts_the_token_and_works_without_javascript(emulator):
    page, _ = check_out(emulator, checkout_answer(method="POST"))
    html = text(page)
    assert page.status_code == 200 and "Location" not in page.headers
    assert 'method="post" action="http://gateway.test/pay"' in html
    assert 'name="paymenttoken" value="tok123"' in html and '<button type="submit">' in html


def test_badly_signed_checkout_response_is_not_followed(emulator):
    page, _ = check_out(emulator, checkout_answer(key="another-key"))
    assert page.status_code == 502 and "Location" not in page.headers
    assert "CheckoutResponse signature does not match" in text(page)
    assert "checkout error" in text(emulator.get("/admin/orders"))


def test_checkout_errormessage_is_shown_and_kept_as_the_orders_comment(emulator):
    page, _ = check_out(emulator, checkout_answer(token="", redirecturl="", errormessage="merchant login refused"))
    assert page.status_code == 502 and "102: merchant login refused" in text(page)
    assert "102: merchant login refused" in text(emulator.get("/admin/orders"))


@pytest.mark.parametrize("gateway, message", [
    ({"body": requests.ConnectionError("refused")}, "could not be reached (ConnectionError)"),
    ({"body": "<html>Internal Server Error</html>", "status": 500}, "answered HTTP 500 without a JSON object"),
    ({"json": ["not", "an", "object"]}, "without a JSON object"),
    ({"json": checkout_answer(redirecturl="javascript:alert(1)")}, "no usable redirecturl"),
])
def test_an_unreachable_or_garbled_gateway_is_a_clear_message(emulator, gateway, message):
    page, _ = check_out(emulator, **gateway)
    assert page.status_code == 502 and message in text(page) and "Traceback" not in text(page)


@pytest.mark.parametrize("form, message", [
    ({"qty-123abc": "0"}, "Choose at least one item."),
    ({"qty-123abc": "two"}, "is not a whole number"),
    ({"qty-123abc": "1", "discount": "100.00"}, "leaves nothing to pay"),
    ({"qty-123abc": "1", "tax": "1.005"}, "is not an amount in USD"),
])
def test_cart_form_errors_are_flashed_and_nothing_is_sent(emulator, form, message):
    with responses.RequestsMock():  # any call to the gateway would fail the test
        page = emulator.post("/checkout", data=form, follow_redirects=True)
    assert message in text(page)


# Notification URL

def test_notification_correctly_signed_is_processed_and_the_return_page_says_paid(emulator):
    _, sent = check_out(emulator)
    returnurl = urlsplit(sent["returnurl"])
    assert "awaiting payment confirmation" in text(emulator.get(f"{returnurl.path}?{returnurl.query}")).lower()
    assert notify(emulator, completion(sent)) == {"processed": 1, "errorcode": "", "errormessage": ""}
    page = text(emulator.get(f"{returnurl.path}?{returnurl.query}"))
    assert "Thank you, order AB-1001 is paid" in page and "sbx_1" in page


def test_repeated_notification_is_answered_the_same_and_recorded_once(emulator):
    _, sent = check_out(emulator)
    assert notify(emulator, completion(sent))["processed"] == 1
    assert notify(emulator, completion(sent))["processed"] == 1
    second_payment = notify(emulator, completion(sent, transactionid="sbx_2"))
    assert (second_payment["processed"], second_payment["errorcode"]) == (0, "ALREADY_PAID")
    orders = text(emulator.get("/admin/orders"))
    assert "sbx_1" in orders and "sbx_2" not in orders


@pytest.mark.parametrize("tamper", [{"invoice": "AB-9999"}, {"transactionid": "sbx_other"}, {"orderid": 1002},
                                    {"signature": "0" * 32}])
def test_tampered_notification_is_refused(emulator, tamper):
    _, sent = check_out(emulator)
    check_out(emulator)  # order 1002 exists too
    answer = notify(emulator, {**completion(sent), **tamper})
    assert (answer["processed"], answer["errorcode"]) == (0, "401")
    assert text(emulator.get("/admin/orders")).count('class="status">awaiting payment') == 2


def test_notification_signed_with_another_key_or_unreadable_is_refused(emulator):
    _, sent = check_out(emulator)
    assert notify(emulator, completion(sent, key="another-key"))["processed"] == 0
    assert emulator.post("/notify", data=b"not json").get_json()["errorcode"] == "400"


def test_notification_for_an_unknown_order_is_refused(emulator):
    answer = notify(emulator, completion({"orderid": 4242, "invoice": "AB-4242", "amounttotal": 100}))
    assert (answer["processed"], answer["errorcode"]) == (0, "404")


@pytest.mark.parametrize("amount", [CART_TOTAL + 1, f"{CART_TOTAL}.00"])
def test_notification_with_another_amount_is_refused_as_sent(emulator, amount):
    _, sent = check_out(emulator)
    raw = json.dumps(completion(sent)).replace(f'"amount": {CART_TOTAL}', f'"amount": {amount}')
    answer = emulator.post("/notify", data=raw, content_type="application/json").get_json()
    assert (answer["processed"], answer["errorcode"]) == (0, "409") and str(amount) in answer["errormessage"]


def test_processed_zero_toggle_rejects_the_order(emulator):
    _, sent = check_out(emulator, form={**CART, "reject": "1"})
    answer = notify(emulator, completion(sent))
    assert answer == {"processed": 0, "errorcode": "OUT_OF_STOCK", "errormessage": "the store could not accept this order"}
    orders = text(emulator.get("/admin/orders"))
    assert "rejected by the store" in orders and "Void/Refund</button>" not in orders


def test_declined_payment_is_recorded_with_its_error(emulator):
    _, sent = check_out(emulator)
    assert notify(emulator, completion(sent, transactionid="", approved=0))["processed"] == 1
    orders = text(emulator.get("/admin/orders"))
    assert "payment declined" in orders and "DECLINED: insufficient funds" in orders


def test_concurrent_notifications_of_two_payments_accept_exactly_one():
    store = Store(("user1", "password1"))
    order = store.new_order(Cart(({"itemid": "a", "itemname": "a", "unitprice": 100, "quantity": 1},), 0, 0, 0), True)
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda n=n: answers.append(store.receive_completion(
        {"orderid": order.orderid, "invoice": order.invoice, "amount": "100", "approved": 1, "transactionid": f"t{n}"})))
        for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(ACCEPTED) == 1 and order.status == "paid"


# Return and error pages

def test_return_link_with_a_wrong_k_is_refused(emulator):
    assert emulator.get("/return?gw=123&orderid=1001&rk=abc&k=0f0f").status_code == 400


def test_error_page_shows_the_error_code(emulator):
    assert "error OUT_OF_STOCK" in text(emulator.get("/error?error=OUT_OF_STOCK"))


# Merchant's Void/Refund

def test_full_void_sends_a_signed_refund_request_and_checks_the_answer(emulator):
    sent = paid_order(emulator)
    page, request = press_refund(emulator, 1001, "", refund_answer(sent))
    assert request["signature"] == md5(request["randomkey"], PRIVATE_KEY, 1001, "AB-1001", "sbx_1")
    assert {key: request[key] for key in request if key not in ("randomkey", "signature")} == {
        "type": "void", "orderid": 1001, "invoice": "AB-1001", "transactionid": "sbx_1", "username": "user1",
        "password": "password1", "currency": "USD", "amounttotal": CART_TOTAL, "is_full_refund": True}
    assert "Order AB-1001: approved: $95.50 back, transaction sbx_r_1" in page
    assert "refunded" in page and "Void/Refund</button>" not in page


def test_partial_refund_is_a_refund_of_the_dollars_typed(emulator):
    sent = paid_order(emulator)
    page, request = press_refund(emulator, 1001, "12.50", refund_answer(sent))
    assert (request["type"], request["amounttotal"], request["is_full_refund"]) == ("refund", 1250, False)
    assert request["signature"] == md5(request["randomkey"], PRIVATE_KEY, 1001, "AB-1001", "sbx_1")
    assert "approved: $12.50 back" in page and "partly refunded" in page and "$12.50</td>" in page


def test_whole_order_refund_after_a_partial_one_asks_only_for_what_is_left(emulator):
    sent = paid_order(emulator)
    press_refund(emulator, 1001, "12.50", refund_answer(sent))
    page, request = press_refund(emulator, 1001, "", refund_answer(sent, transactionid="sbx_r_2"))
    assert (request["type"], request["amounttotal"], request["is_full_refund"]) == ("refund", CART_TOTAL - 1250, False)
    assert f"approved: ${(CART_TOTAL - 1250) / 100:.2f} back" in page and "<td>refunded" in page.replace(
        '<td class="status">', "<td>")


def test_badly_signed_refund_response_is_not_believed(emulator):
    sent = paid_order(emulator)
    page, _ = press_refund(emulator, 1001, "12.50", refund_answer(sent, key="another-key"))
    assert "RefundResponse signature does not match" in page and "partly refunded" not in page


def test_refused_refund_shows_the_gateways_message(emulator):
    sent = paid_order(emulator)
    page, _ = press_refund(emulator, 1001, "12.50", refund_answer(sent, approved=0, errormessage="not settled yet"))
    assert "refused (103): not settled yet" in page


@pytest.mark.parametrize("amount, message", [("abc", "is not an amount"), ("1.234", "is not an amount"),
                                             ("-1", "is not an amount"), ("0", "is not more than zero")])
def test_refund_amount_must_be_dollars_and_cents(emulator, amount, message):
    paid_order(emulator)
    page, request = press_refund(emulator, 1001, amount, None)
    assert message in page and request is None


def test_an_unpaid_order_cannot_be_refunded(emulator):
    check_out(emulator)
    page, request = press_refund(emulator, 1001, "", None)
    assert "no payment left to void or refund" in page and request is None


# Settings and log

def test_every_page_has_the_stores_icon_and_asking_for_it_is_no_404(emulator):
    icon = emulator.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    for page in ("/", "/admin/orders", "/settings", "/log"):
        assert '<link rel="icon" href="/favicon.ico"' in text(emulator.get(page))


def test_merchant_credentials_from_the_settings_page_are_sent(emulator):
    assert 'value="user1"' in text(emulator.get("/settings"))
    emulator.post("/settings", data={"username": "api-login", "password": "tx-key"})
    _, sent = check_out(emulator)
    assert (sent["username"], sent["password"]) == ("api-login", "tx-key")
    emulator.post("/settings", data={"username": "api-login-2", "password": ""})  # blank keeps the password
    _, sent = check_out(emulator)
    assert (sent["username"], sent["password"]) == ("api-login-2", "tx-key")
    assert "tx-key" not in text(emulator.get("/settings"))


def test_log_lists_every_exchange_newest_first_with_credentials_masked(emulator):
    sent = paid_order(emulator)
    press_refund(emulator, 1001, "1.00", refund_answer(sent))
    log = text(emulator.get("/log"))
    headings = [line for line in log.splitlines() if line.startswith("<section>")]
    assert [h.split(" – ")[1].split(" signature")[0] for h in headings] == [
        "RefundResponse", "CompleteOrderRequest", "CheckoutResponse"]
    assert GATEWAY + "/post-order" in headings[0] and "/notify?gw=123" in headings[1]
    assert all('class="good">valid' in heading for heading in headings)
    assert "password1" not in log and "user1" not in log and '"password": "(hidden)"' in log
    assert '"processed": 1' in log and '"paymenttoken": "tok123"' in log


def test_slow_store_setting_delays_the_notification_answer(emulator, monkeypatch):
    from store_emulator import shop

    slept: list[float] = []
    monkeypatch.setattr(shop.time, "sleep", slept.append)
    emulator.post("/settings", data={"username": "user1", "answer_delay": "1.5"})
    assert 'value="1.5"' in text(emulator.get("/settings"))
    _, sent = check_out(emulator)
    assert notify(emulator, completion(sent))["processed"] == 1
    assert slept == [1.5]
    assert "must be a number of seconds" in text(emulator.post("/settings", data={"username": "u", "answer_delay": "-1"},
                                                               follow_redirects=True))


def test_slow_store_from_the_environment():
    app = create_emulator_app(GATEWAY, PRIVATE_KEY, answer_delay=2.0)
    assert 'value="2.0"' in text(app.test_client().get("/settings"))


def test_order_numbers_start_where_the_environment_says(monkeypatch):
    """A new emulator against a gateway database that saw order 1001 paid must not offer 1001 again."""
    import importlib

    monkeypatch.setenv("EMULATOR_GATEWAY_URL", GATEWAY)
    monkeypatch.setenv("GATEWAY_PRIVATE_KEY", PRIVATE_KEY)
    monkeypatch.setenv("EMULATOR_FIRST_ORDERID", "5000")
    wsgi = importlib.reload(importlib.import_module("store_emulator.wsgi"))
    _, sent = check_out(wsgi.app.test_client())
    assert (sent["orderid"], sent["invoice"]) == (5000, "AB-5000")
