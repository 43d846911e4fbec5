"""The store emulator plays the platform's part exactly: what it signs and what it refuses."""
from __future__ import annotations

import json

import pytest
import responses

from gateway.emulator import create_emulator_app
from gateway.protocol.signing import sign

from .protocol_helpers import PRIVATE_KEY, md5

GATEWAY = "http://gateway.test"


@pytest.fixture
def emulator():  # type: ignore[no-untyped-def]
    app = create_emulator_app(GATEWAY, PRIVATE_KEY, public_url="http://store.test")
    return app.test_client()


def gateway_answer(method: str = "GET", token: str = "tok123", errormessage: str = "", key: str = PRIVATE_KEY) -> dict:
    redirect = "http://gateway.test/pay"
    return {"paymenttoken": token, "redirecturl": redirect, "redirectmethod": method, "errorcode": "",
            "errormessage": errormessage, "randomkey": "rk1", "signature": sign("rk1", key, token, redirect)}


def check_out(emulator, answer: dict):  # type: ignore[no-untyped-def]
    with responses.RequestsMock() as gateway:
        gateway.add(responses.POST, GATEWAY + "/checkout", json=answer)
        response = emulator.post("/checkout", data={"qty-123abc": "2", "qty-asd1-22": "1"})
        sent = json.loads(gateway.calls[0].request.body)
    return response, sent


def test_checkout_request_is_signed_and_complete(emulator):
    response, sent = check_out(emulator, gateway_answer())
    assert sent["signature"] == md5(sent["randomkey"], PRIVATE_KEY, sent["orderid"], sent["invoice"], sent["amounttotal"])
    assert sent["amounttotal"] == 2 * 1200 + 2200 + 1000 + 500
    assert sent["errorurl"] == "http://store.test/error?error=0"
    assert {"type", "email", "billing", "shipping", "items", "username", "password", "cancelurl", "notificationurl",
            "returnurl", "taxtotal", "shippingtotal", "discount", "currency"} <= sent.keys()
    assert response.status_code == 302 and response.headers["Location"] == "http://gateway.test/pay?paymenttoken=tok123"


def test_post_redirect_is_a_form_that_posts_the_token(emulator):
    response, _ = check_out(emulator, gateway_answer(method="POST"))
    html = response.get_data(as_text=True)
    assert 'action="http://gateway.test/pay"' in html and 'name="paymenttoken" value="tok123"' in html


def test_badly_signed_checkout_response_is_not_followed(emulator):
    response, _ = check_out(emulator, gateway_answer(key="another-key"))
    assert response.status_code == 502 and "signature does not match" in response.get_data(as_text=True)


def test_checkout_error_is_shown_and_kept_as_a_comment(emulator):
    response, _ = check_out(emulator, gateway_answer(token="", errormessage="order already paid"))
    assert response.status_code == 502 and "order already paid" in response.get_data(as_text=True)
    assert "order already paid" in emulator.get("/admin/orders").get_data(as_text=True)


def notification(orderid: int, amount: int, key: str = PRIVATE_KEY, approved: int = 1) -> dict:
    return {"orderid": orderid, "invoice": f"AB-{orderid}", "amount": amount, "approved": approved,
            "transactionid": "sbx_1", "errorcode": "", "errormessage": "", "randomkey": "r",
            "signature": sign("r", key, orderid, f"AB-{orderid}", "sbx_1")}


def test_notify_accepts_a_signed_notification_and_refuses_tampering(emulator):
    _, sent = check_out(emulator, gateway_answer())
    orderid, amount = sent["orderid"], sent["amounttotal"]
    assert emulator.post("/notify", json=notification(orderid, amount, key="x")).get_json()["processed"] == 0
    wrong = emulator.post("/notify", json=notification(orderid, amount + 1)).get_json()
    assert wrong["processed"] == 0 and "amount" in wrong["errormessage"]
    assert emulator.post("/notify", json=notification(orderid, amount)).get_json() == {
        "processed": 1, "errorcode": "", "errormessage": ""}
    assert emulator.post("/notify", data=b"not json").get_json()["processed"] == 0


def test_refund_requests_are_signed_and_answers_checked(emulator):
    _, sent = check_out(emulator, gateway_answer())
    orderid = sent["orderid"]
    emulator.post("/notify", json=notification(orderid, sent["amounttotal"]))
    answer = {"approved": 1, "transactionid": "sbx_r_1", "errorcode": "", "errormessage": "", "randomkey": "q",
              "signature": sign("q", PRIVATE_KEY, orderid, f"AB-{orderid}", "sbx_r_1")}
    with responses.RequestsMock() as gateway:
        gateway.add(responses.POST, GATEWAY + "/post-order", json=answer)
        page = emulator.post(f"/admin/orders/{orderid}/refund", data={"amount": "12.50"}, follow_redirects=True)
        request = json.loads(gateway.calls[0].request.body)
    assert request["type"] == "refund" and request["amounttotal"] == 1250 and request["is_full_refund"] is False
    assert request["signature"] == md5(request["randomkey"], PRIVATE_KEY, orderid, f"AB-{orderid}", "sbx_1")
    assert "approved: $12.50 back" in page.get_data(as_text=True)
    log = emulator.get("/log").get_data(as_text=True)
    assert "password1" not in log and '"password": "(hidden)"' in log
