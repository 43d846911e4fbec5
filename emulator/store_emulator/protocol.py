"""The store platform's side of the protocol: the objects it signs and the signatures it checks."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from gateway.protocol.signing import fresh_randomkey, sign, verify, wire_text

from .store import Order

STORE_ID, GATEWAY_ID = "1", "123"
EMAIL = "ada@example.com"
ADDRESS = {"firstname": "Ada", "lastname": "Shopper", "company": "", "address": "123 Main St", "address2": "",
           "city": "Tamarac", "state": "FL", "zip": "33067", "country": "US", "phone": "5555550100"}


def return_check(randomkey: str, domain: str) -> str:
    """The store's own `k` on returnurl: md5(rk + domain + store id + gateway id), the same concatenated md5."""
    return sign(randomkey, domain, STORE_ID, GATEWAY_ID)


def return_check_ok(k: str, randomkey: str, domain: str) -> bool:
    return verify(k, randomkey, domain, STORE_ID, GATEWAY_ID)


def checkout_request(order: Order, private_key: str, base: str, domain: str, credentials: tuple[str, str],
                     testmode: bool) -> dict[str, Any]:
    """The CheckoutRequest, every field of the text's example, plus `testmode` as production stores send."""
    randomkey, rk = fresh_randomkey(), fresh_randomkey()
    returnurl = f"{base}/return?" + urlencode(
        {"gw": GATEWAY_ID, "orderid": order.orderid, "rk": rk, "k": return_check(rk, domain)})
    cart = order.cart
    return {
        "type": "sale", "orderid": order.orderid, "invoice": order.invoice, "email": EMAIL,
        "billing": ADDRESS, "shipping": ADDRESS, "currency": order.currency, "amounttotal": order.amounttotal,
        "taxtotal": cart.taxtotal, "shippingtotal": cart.shippingtotal, "discount": cart.discount,
        "items": list(cart.items), "username": credentials[0], "password": credentials[1],
        "cancelurl": f"{base}/?cancelled={order.orderid}", "errorurl": f"{base}/error?error=0",
        "notificationurl": f"{base}/notify?gw={GATEWAY_ID}", "returnurl": returnurl,
        "testmode": testmode, "randomkey": randomkey,
        "signature": sign(randomkey, private_key, order.orderid, order.invoice, order.amounttotal),
    }


def refund_request(order: Order, private_key: str, amount: int, full: bool, credentials: tuple[str, str]) -> dict[str, Any]:
    """The merchant's Void/Refund: `void` for the whole order, `refund` for part of it."""
    randomkey = fresh_randomkey()
    return {
        "type": "void" if full else "refund", "orderid": order.orderid, "invoice": order.invoice,
        "transactionid": order.transactionid, "username": credentials[0], "password": credentials[1],
        "currency": order.currency, "amounttotal": amount, "is_full_refund": full, "randomkey": randomkey,
        "signature": sign(randomkey, private_key, order.orderid, order.invoice, order.transactionid),
    }


def checkout_response_ok(answer: dict[str, Any], private_key: str) -> bool:
    return verify(answer.get("signature"), wire_text(answer.get("randomkey")), private_key,
                  answer.get("paymenttoken", ""), answer.get("redirecturl", ""))


def refund_response_ok(answer: dict[str, Any], order: Order, private_key: str) -> bool:
    """Signed over the store's own orderid and invoice and the response's transactionid."""
    return verify(answer.get("signature"), wire_text(answer.get("randomkey")), private_key,
                  order.orderid, order.invoice, answer.get("transactionid", ""))


def complete_order_ok(body: dict[str, Any], private_key: str) -> bool:
    return verify(body.get("signature"), wire_text(body.get("randomkey")), private_key,
                  body.get("orderid", ""), body.get("invoice", ""), body.get("transactionid", ""))
