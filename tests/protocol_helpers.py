"""The text's own example objects, re-signed with a test key, and helpers to drive the endpoints."""
from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

PRIVATE_KEY = "tk3-store-platform-9QmX"  # strong enough for production's checks (tests run nodes in production)
NOTIFY_URL = "https://example-com.3dcartstores.com/paymentreceive_json.asp?gw=123"
RETURN_URL = "https://example-com.3dcartstores.com/paymentreceive.asp?gw=123&orderid=123&rk=abc&k=0f0f"
ERROR_URL = "https://example-com.3dcartstores.com/error.asp?error=0"
CANCEL_URL = "https://example-com.3dcartstores.com/checkout.asp"

EXAMPLE_CHECKOUT: dict[str, Any] = {
    "type": "sale",
    "orderid": 123,
    "invoice": "AB-12234",
    "email": "123@123.com",
    "billing": {"firstname": "abc", "lastname": "xyz", "company": "abc", "address": "123 abc", "address2": "aaa",
                "city": "tamarac", "state": "FL", "zip": "33067", "country": "US", "phone": "1231231212"},
    "shipping": {"firstname": "abc", "lastname": "xyz", "company": "abc", "address": "123 abc", "address2": "aaa",
                 "city": "tamarac", "state": "FL", "zip": "33067", "country": "US", "phone": "1231231212"},
    "currency": "USD",
    "amounttotal": 12312,
    "taxtotal": 1000,
    "shippingtotal": 500,
    "discount": 1000,
    "items": [
        {"itemid": "123abc", "itemname": "item name 123", "unitprice": 1200, "quantity": 2},
        {"itemid": "asd1-22", "itemname": "item name abc", "unitprice": 2200, "quantity": 3},
        {"itemid": "111q-azas", "itemname": "item name xyz", "unitprice": 5, "quantity": 10},
    ],
    "username": "user1",
    "password": "password1",
    "cancelurl": CANCEL_URL,
    "errorurl": ERROR_URL,
    "notificationurl": NOTIFY_URL,
    "returnurl": RETURN_URL,
    "randomkey": "abc321123xyz",
}

EXAMPLE_REFUND: dict[str, Any] = {
    "type": "void",
    "orderid": 123,
    "invoice": "AB-12234",
    "transactionid": "abc12345",
    "username": "user1",
    "password": "password1",
    "currency": "USD",
    "amounttotal": 12312,
    "is_full_refund": True,
    "randomkey": "refund321123xyz",
}


def md5(*parts: object) -> str:
    return hashlib.md5("".join(str(p) for p in parts).encode()).hexdigest()


def signed_checkout(**overrides: Any) -> dict[str, Any]:
    """The example, changed; a changed body gets its own randomkey (each is accepted once) unless one is given."""
    body = copy.deepcopy(EXAMPLE_CHECKOUT)
    if overrides and "randomkey" not in overrides:
        body["randomkey"] = "rk" + md5(json.dumps(overrides, sort_keys=True, default=str))[:20]
    body.update(overrides)
    body["signature"] = md5(body["randomkey"], PRIVATE_KEY, body["orderid"], body["invoice"], body["amounttotal"])
    return body


def signed_refund(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE_REFUND)
    body.update(overrides)
    body["signature"] = md5(body["randomkey"], PRIVATE_KEY, body["orderid"], body["invoice"], body["transactionid"])
    return body


def post_json(client: Any, path: str, body: Any) -> dict[str, Any]:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    response = client.post(path, data=raw, content_type="application/json")
    assert response.status_code == 200, response.data[:500]
    return response.get_json()


def assert_checkout_response_signed(answer: dict[str, Any]) -> None:
    assert answer["signature"] == md5(answer["randomkey"], PRIVATE_KEY, answer["paymenttoken"], answer["redirecturl"])
    assert re.fullmatch(r"[0-9a-f]{32}", answer["randomkey"])


def complete_order_answer(processed: int = 1, errorcode: str = "", errormessage: str = "") -> dict[str, Any]:
    return {"processed": processed, "errorcode": errorcode, "errormessage": errormessage}


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "payment page has no CSRF field"
    return match.group(1)


CARDS = {
    "visa": "4242424242424242",
    "mastercard": "5555555555554444",
    "amex": "378282246310005",
    "decline": "4000000000000002",
    "insufficient": "4000000000009995",
    "expired": "4000000000000069",
    "cvc": "4000000000000127",
    "error": "4000000000000119",
}


def card_form(token: str, csrf: str, number: str = CARDS["visa"], cvc: str = "123", **extra: str) -> dict[str, str]:
    return {"paymenttoken": token, "csrf": csrf, "card_number": number, "expiry": "12/39", "cvc": cvc,
            "holder": "Ada Shopper", **extra}
