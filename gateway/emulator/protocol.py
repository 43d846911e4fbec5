"""The store platform's side of the protocol: the objects it signs and the checks it makes."""
from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from ..protocol.signing import fresh_randomkey, sign, verify
from .store import Order

CATALOGUE = (
    {"itemid": "123abc", "itemname": "Espresso cup", "unitprice": 1200},
    {"itemid": "asd1-22", "itemname": "Coffee beans 1 kg", "unitprice": 2200},
    {"itemid": "111q-azas", "itemname": "Paper filter", "unitprice": 5},
)
STORE_ID, GATEWAY_ID = "1", "123"
ADDRESS = {"firstname": "Ada", "lastname": "Shopper", "company": "", "address": "123 Main St", "address2": "",
           "city": "Tamarac", "state": "FL", "zip": "33067", "country": "US", "phone": "5555550100"}


def return_check(randomkey: str, domain: str) -> str:
    """The store's own `k` on returnurl: md5(rk + domain + store id + gateway id)."""
    return hashlib.md5(f"{randomkey}{domain}{STORE_ID}{GATEWAY_ID}".encode()).hexdigest()


def checkout_request(order: Order, private_key: str, base: str, domain: str, credentials: tuple[str, str],
                     extra: dict[str, Any]) -> dict[str, Any]:
    randomkey = fresh_randomkey()
    rk = fresh_randomkey()
    returnurl = f"{base}/return?" + urlencode(
        {"gw": GATEWAY_ID, "orderid": order.orderid, "rk": rk, "k": return_check(rk, domain)})
    return {
        "type": "sale", "orderid": order.orderid, "invoice": order.invoice, "email": "ada@example.com",
        "billing": ADDRESS, "shipping": ADDRESS, "currency": order.currency, "amounttotal": order.amounttotal,
        "taxtotal": extra["taxtotal"], "shippingtotal": extra["shippingtotal"], "discount": extra["discount"],
        "items": order.items, "username": credentials[0], "password": credentials[1],
        "cancelurl": f"{base}/?cancelled={order.orderid}", "errorurl": f"{base}/error?error=0",
        "notificationurl": f"{base}/notify?gw={GATEWAY_ID}", "returnurl": returnurl,
        "testmode": extra["testmode"], "randomkey": randomkey,
        "signature": sign(randomkey, private_key, order.orderid, order.invoice, order.amounttotal),
    }


def refund_request(order: Order, private_key: str, amount: int, full: bool, credentials: tuple[str, str]) -> dict[str, Any]:
    randomkey = fresh_randomkey()
    return {
        "type": "void" if full else "refund", "orderid": order.orderid, "invoice": order.invoice,
        "transactionid": order.transactionid, "username": credentials[0], "password": credentials[1],
        "currency": order.currency, "amounttotal": amount, "is_full_refund": full, "randomkey": randomkey,
        "signature": sign(randomkey, private_key, order.orderid, order.invoice, order.transactionid),
    }


def checkout_response_ok(answer: dict[str, Any], private_key: str) -> bool:
    return verify(answer.get("signature"), str(answer.get("randomkey", "")), private_key,
                  answer.get("paymenttoken", ""), answer.get("redirecturl", ""))


def refund_response_ok(answer: dict[str, Any], order: Order, private_key: str) -> bool:
    return verify(answer.get("signature"), str(answer.get("randomkey", "")), private_key,
                  order.orderid, order.invoice, answer.get("transactionid", ""))


def complete_order_ok(body: dict[str, Any], private_key: str) -> bool:
    return verify(body.get("signature"), str(body.get("randomkey", "")), private_key,
                  body.get("orderid", ""), body.get("invoice", ""), body.get("transactionid", ""))
