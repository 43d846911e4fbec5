"""Signed objects the gateway sends, each with a fresh randomkey of its own."""
from __future__ import annotations

from typing import Any

from .errors import ProtocolError
from .signing import fresh_randomkey, sign


def checkout_response(private_key: str, paymenttoken: str, redirecturl: str, redirectmethod: str) -> dict[str, Any]:
    randomkey = fresh_randomkey()
    return {
        "paymenttoken": paymenttoken,
        "redirecturl": redirecturl,
        "redirectmethod": redirectmethod,
        "errorcode": "",
        "errormessage": "",
        "randomkey": randomkey,
        "signature": sign(randomkey, private_key, paymenttoken, redirecturl),
    }


def checkout_error(private_key: str, error: ProtocolError) -> dict[str, Any]:
    randomkey = fresh_randomkey()
    return {
        "paymenttoken": "",
        "redirecturl": "",
        "redirectmethod": "",
        "errorcode": error.code.value,
        "errormessage": error.message,
        "randomkey": randomkey,
        "signature": sign(randomkey, private_key, "", ""),
    }


def complete_order_request(
    private_key: str,
    *,
    orderid: int,
    invoice: str,
    amount: int,
    approved: bool,
    transactionid: str,
    errorcode: str = "",
    errormessage: str = "",
) -> dict[str, Any]:
    randomkey = fresh_randomkey()
    return {
        "orderid": orderid,
        "invoice": invoice,
        "amount": amount,
        "approved": int(approved),
        "transactionid": transactionid,
        "errorcode": errorcode,
        "errormessage": errormessage,
        "randomkey": randomkey,
        "signature": sign(randomkey, private_key, orderid, invoice, transactionid),
    }


def refund_response(
    private_key: str,
    *,
    orderid: object,
    invoice: object,
    approved: bool,
    transactionid: str,
    errorcode: str = "",
    errormessage: str = "",
) -> dict[str, Any]:
    """``orderid`` and ``invoice`` are signed as the request sent them; ``transactionid`` is the void's or refund's own id."""
    randomkey = fresh_randomkey()
    return {
        "approved": int(approved),
        "transactionid": transactionid,
        "errorcode": errorcode,
        "errormessage": errormessage,
        "randomkey": randomkey,
        "signature": sign(randomkey, private_key, orderid, invoice, transactionid),
    }
