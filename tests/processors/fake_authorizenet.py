"""A strict, in-memory stand-in for Authorize.Net's JSON API, as hard to please as the real one.

The gateway's connector is only as good as the answers it is tested against, so this fake refuses
what Authorize.Net refuses (element order and lengths of its XML schema, credentials, amounts) and
answers the way it answers: a UTF-8 byte-order mark before the JSON, ``messages.resultCode``
Ok/Error, ``transactionResponse`` with responseCode 1/2/3/4, real transIds on declines, the
duplicate window, holds for review, Test Mode's transId 0, refund and void rules, list paging and
the 31-day batch search, and a short delay before a new transaction shows in lists.

It serves two ways: :meth:`FakeAuthorizeNet.handle` is a ``responses`` callback, and the object is a
WSGI app (:meth:`FakeAuthorizeNet.serve` runs it on a loopback port). Odd answers are scripted the
same way for both: the real sandbox's trigger card (``TRIGGER_CARD``, whose amount in dollars is
the reason code wanted) and a queue of :class:`Fault` s for the next requests of a kind.

Error codes come from Authorize.Net's published response-code lists; the code for a settled-batch
range over 31 days is not documented, so the fake answers E00003 with the documented rule.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator

import requests
from werkzeug.serving import WSGIRequestHandler, make_server

BOM = "\ufeff"
API_PATH = "/xml/v1/request.api"
DECLINE_CARD = "4000000000000002"  # declined (reason 2), as the gateway's sandbox declines it
TRIGGER_CARD = "4222222222222"  # as in Authorize.Net's sandbox: the amount in dollars is the reason code
DEFAULT_DUPLICATE_WINDOW = 120  # seconds, when the request sets none
MAX_DUPLICATE_WINDOW = 28800
REFUND_DAYS = 120
BATCH_RANGE_DAYS = 31
APPROVED_TEXT = "This transaction has been approved."
HELD_TEXT = "Your order has been received. Thank you for your business!"

# Element order of AnetApiSchema.xsd for every element the gateway sends (the schema's sequences,
# cut after the last element the gateway uses); anything else is "invalid child element".
ORDER: dict[str, tuple[str, ...]] = {
    "createTransactionRequest": ("merchantAuthentication", "clientId", "refId", "transactionRequest"),
    "transactionRequest": ("transactionType", "amount", "currencyCode", "payment", "profile", "solution", "callId",
                           "terminalNumber", "authCode", "refTransId", "splitTenderId", "order", "lineItems", "tax",
                           "duty", "shipping", "taxExempt", "poNumber", "customer", "billTo", "shipTo", "customerIP",
                           "cardholderAuthentication", "retail", "employeeId", "transactionSettings", "userFields"),
    "merchantAuthentication": ("name", "transactionKey"),
    "payment": ("creditCard",),
    "creditCard": ("cardNumber", "expirationDate", "cardCode"),
    "order": ("invoiceNumber", "description"),
    "customer": ("type", "id", "email"),
    "transactionSettings": ("setting",),
    "setting": ("settingName", "settingValue"),
    "getTransactionDetailsRequest": ("merchantAuthentication", "clientId", "refId", "transId"),
    "getUnsettledTransactionListRequest": ("merchantAuthentication", "clientId", "refId", "status", "sorting", "paging"),
    "getSettledBatchListRequest": ("merchantAuthentication", "clientId", "refId", "includeStatistics",
                                   "firstSettlementDate", "lastSettlementDate"),
    "getTransactionListRequest": ("merchantAuthentication", "clientId", "refId", "batchId", "sorting", "paging"),
    "updateHeldTransactionRequest": ("merchantAuthentication", "clientId", "refId", "heldTransactionRequest"),
    "heldTransactionRequest": ("action", "refTransId"),
    "sorting": ("orderBy", "orderDescending"),
    "paging": ("limit", "offset"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "createTransactionRequest": ("merchantAuthentication", "transactionRequest"),
    "transactionRequest": ("transactionType",),
    "creditCard": ("cardNumber", "expirationDate"),
    "setting": ("settingName",),
    "getTransactionDetailsRequest": ("merchantAuthentication", "transId"),
    "getUnsettledTransactionListRequest": ("merchantAuthentication",),
    "getSettledBatchListRequest": ("merchantAuthentication",),
    "getTransactionListRequest": ("merchantAuthentication", "batchId"),
    "updateHeldTransactionRequest": ("merchantAuthentication", "heldTransactionRequest"),
    "heldTransactionRequest": ("action", "refTransId"),
    "sorting": ("orderBy", "orderDescending"),
    "paging": ("limit", "offset"),
}
LISTS = {"setting"}  # elements that may repeat (a JSON array)
_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?"
# Simple types: what a value must look like; lengths are the schema's maxLength / patterns.
VALUES: dict[str, str] = {
    "name": r".{0,25}", "transactionKey": r".{0,16}", "refId": r".{0,20}", "clientId": r".{0,30}",
    "transactionType": r"authCaptureTransaction|authOnlyTransaction|priorAuthCaptureTransaction|refundTransaction"
                       r"|voidTransaction",
    "amount": r"-?\d+(\.\d+)?", "currencyCode": r"[A-Z]{3}",
    "cardNumber": r"[0-9X]{4,16}", "expirationDate": r"\d{4}-\d{2}|\d{2}\d{2}|\d{2}/\d{2}|XXXX", "cardCode": r"\d{3,4}",
    "refTransId": r"\d{1,20}", "transId": r"\d{1,20}", "batchId": r"\d{1,20}",
    "invoiceNumber": r".{0,20}", "description": r".{0,255}", "email": r".{0,255}", "id": r".{0,20}",
    "type": r"individual|business",
    "settingName": r"allowPartialAuth|duplicateWindow|emailCustomer|recurringBilling|testRequest",
    "settingValue": r".{0,255}",
    "status": r"pendingApproval", "includeStatistics": r"true|false",
    "firstSettlementDate": _DATETIME, "lastSettlementDate": _DATETIME,
    "orderBy": r"id|submitTimeUTC", "orderDescending": r"true|false",
    "limit": r"\d+", "offset": r"\d+", "action": r"approve|decline",
}
PAGE_LIMITS = {"limit": (1, 1000), "offset": (1, 100000)}
# The sandbox trigger card's reason codes: responseCode, text (and the AVS/CVV codes they come with).
TRIGGERS: dict[int, tuple[str, str]] = {
    2: ("2", "This transaction has been declined."),
    3: ("2", "This transaction has been declined."),
    4: ("2", "This transaction has been declined."),
    6: ("3", "The credit card number is invalid."),
    8: ("3", "The credit card has expired."),
    19: ("3", "An error occurred during processing. Please try again in 5 minutes."),
    27: ("2", "The transaction has been declined because of an AVS mismatch."),
    44: ("2", "This transaction has been declined."),
    45: ("2", "This transaction has been declined."),
    65: ("2", "This transaction has been declined."),
    252: ("4", HELD_TEXT),
    253: ("4", HELD_TEXT),
    295: ("4", "The amount of this request was only partially approved on the given prepaid card. "
               "An additional payment is required to fulfill the balance of this transaction."),
}
AVS_CVV = {27: ("N", "M"), 44: ("Y", "N"), 45: ("N", "N"), 65: ("Y", "N")}
CREDENTIAL_ERRORS = {
    "E00005": "The transaction key or API key is invalid or not present.",
    "E00006": "The API user name is invalid or not present.",
    "E00007": "User authentication failed due to invalid authentication values.",
    "E00008": "User authentication failed. The account or API user is inactive.",
    "E00010": "User authentication failed. You do not have the appropriate permissions.",
}
DETAILS_REQUESTS = {"getTransactionDetailsRequest", "getUnsettledTransactionListRequest",
                    "getSettledBatchListRequest", "getTransactionListRequest"}
NOT_IN_BATCH = ("FDSPendingReview", "FDSAuthorizedPendingReview")


class ManualClock:
    """A clock the test moves: Authorize.Net's windows (duplicates, 120 days, 31 days) without waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float = 0, days: float = 0) -> None:
        self.current += timedelta(seconds=seconds, days=days)


@dataclass
class Account:
    """A merchant's API login: its key, and the account settings the gateway depends on."""

    transaction_key: str
    test_mode: bool = False  # approves everything with transId 0 and charges nothing
    details_api: bool = True  # without the Transaction Details API, lookups answer E00011
    permitted: bool = True  # an API user without the permission to transact: E00010


@dataclass(frozen=True)
class Fault:
    """An odd answer to the next request of a kind. ``after`` faults let the request take effect
    (the card is charged) and then spoil the answer, as a connection cut after sending does."""

    kind: str
    after: bool = True
    seconds: float = 0.0
    code: str = ""

    @classmethod
    def server_error(cls, after: bool = False) -> "Fault":
        return cls("5xx", after)

    @classmethod
    def truncated(cls) -> "Fault":
        return cls("truncated")

    @classmethod
    def malformed(cls) -> "Fault":
        return cls("malformed")

    @classmethod
    def empty_object(cls) -> "Fault":
        return cls("empty")

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        """The request is carried out, the answer comes ``seconds`` later (a timeout, if longer than the client waits)."""
        return cls("slow", seconds=seconds)

    @classmethod
    def duplicate_without_trans_id(cls) -> "Fault":
        """Error 11 naming no transaction (Authorize.Net does this when the original is still in flight)."""
        return cls("duplicate", after=False)

    @classmethod
    def held(cls) -> "Fault":
        """The fraud filters hold this sale for review (reason 252)."""
        return cls("held", after=False)

    @classmethod
    def credentials(cls, code: str) -> "Fault":
        """The login is refused with ``code`` (E00005, E00006, E00007, E00008, E00010)."""
        return cls("credentials", after=False, code=code)


@dataclass
class Transaction:
    trans_id: str
    login: str
    kind: str  # authCaptureTransaction, refundTransaction
    status: str
    amount: Decimal
    submitted: datetime
    invoice: str = ""
    description: str = ""
    last4: str = ""
    account_type: str = "Visa"
    card_digest: str = ""  # the duplicate check compares cards without keeping their numbers
    ref_trans_id: str = ""
    refunded: Decimal = Decimal(0)
    batch_id: str = ""
    settled: datetime | None = None
    response_code: str = "1"
    reason_code: str = "1"


@dataclass
class Batch:
    batch_id: str
    settled: datetime
    trans_ids: list[str]


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, before the transport adapters (responses, WSGI) deliver it."""

    status: int
    body: str
    delay: float = 0.0
    truncate: bool = False


class ApiError(Exception):
    """A top-level refusal: messages.resultCode Error with this code."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code, self.text = code, text


@dataclass
class FakeAuthorizeNet:
    accounts: dict[str, Account] = field(default_factory=lambda: {"merchant": Account("key")})
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    list_delay: timedelta = timedelta(seconds=2)  # a new transaction shows in lists only after this
    transactions: dict[str, Transaction] = field(default_factory=dict)
    batches: list[Batch] = field(default_factory=list)
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)  # the request names, in order
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(60156001))
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what a test does -------------------------------------------------------------------------

    def script(self, operation: str, *faults: Fault) -> None:
        """Queue odd answers for the next requests of ``operation``: sale, void, refund, details,
        unsettled, batches, batch, held (updateHeldTransactionRequest) or any."""
        self.faults.setdefault(operation, deque()).extend(faults)

    def settle(self) -> Batch:
        """Close today's batch: captured sales settle, refunds too; holds stay out of it."""
        with self.lock:
            now = self.clock()
            batch = Batch(str(next(self.ids)), now, [])
            for item in self.transactions.values():
                if item.batch_id or item.status in NOT_IN_BATCH:
                    continue
                item.batch_id, item.settled = batch.batch_id, now
                item.status = {"capturedPendingSettlement": "settledSuccessfully",
                               "refundPendingSettlement": "refundSettledSuccessfully"}.get(item.status, item.status)
                batch.trans_ids.append(item.trans_id)
            self.batches.append(batch)
            return batch

    def record_sale(self, login: str, number: str, amount: Decimal, invoice: str) -> Transaction:
        """A sale made outside the gateway (the merchant's virtual terminal, an earlier attempt)."""
        with self.lock:
            item = Transaction(str(next(self.ids)), login, "authCaptureTransaction", "capturedPendingSettlement",
                               amount, self.clock(), invoice=invoice, last4=number[-4:], account_type=_brand(number))
            self.transactions[item.trans_id] = item
            return item

    def charges(self) -> list[Transaction]:
        """Sales that took money (captured or settled)."""
        return [t for t in self.transactions.values()
                if t.kind == "authCaptureTransaction" and t.status in ("capturedPendingSettlement", "settledSuccessfully")]

    # -- transports -------------------------------------------------------------------------------

    def handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        """The ``responses`` callback: faults become what ``requests`` raises on a real socket."""
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        reply = self.answer(body)
        timeout = (getattr(request, "req_kwargs", None) or {}).get("timeout")
        if reply.delay and timeout is not None and reply.delay >= float(timeout):
            raise requests.ReadTimeout(f"read timed out (read timeout={timeout})")
        time.sleep(reply.delay)
        if reply.truncate:
            raise requests.exceptions.ChunkedEncodingError(
                f"Connection broken: IncompleteRead({len(reply.body) // 2} bytes read)")
        return reply.status, {"Content-Type": "application/json; charset=utf-8"}, reply.body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI app: the same answers over a real socket (a truncated body is cut mid-way)."""
        if environ.get("PATH_INFO") != API_PATH or environ.get("REQUEST_METHOD") != "POST":
            start_response("404 Not Found", [("Content-Type", "text/html")])
            return [b"<html><body>The resource cannot be found.</body></html>"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        reply = self.answer(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        time.sleep(reply.delay)
        payload = reply.body.encode()
        start_response(f"{reply.status} {'OK' if reply.status == 200 else 'Error'}",
                       [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(payload)))])
        if not reply.truncate:
            return [payload]
        return _cut(payload, environ["werkzeug.socket"])

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a loopback port; yields the API's URL."""
        server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}{API_PATH}"
        finally:
            server.shutdown()
            server.server_close()

    # -- the API ----------------------------------------------------------------------------------

    def answer(self, raw: str) -> Reply:
        """The answer to one request body, faults applied."""
        with self.lock:
            try:
                name, body = _parse(raw)
            except ApiError as exc:
                return _reply(None, messages=("Error", exc.code, exc.text))
            self.received.append(name)
            fault = self._next_fault(_operation(name, body))
            if fault is not None and not fault.after:
                early = self._early(fault, name, body)
                if early is not None:
                    return early
            reply = self._process(name, body, fault)
            return _spoil(reply, fault) if fault is not None and fault.after else reply

    def _next_fault(self, operation: str) -> Fault | None:
        for key in (operation, "any"):
            queue = self.faults.get(key)
            if queue:
                return queue.popleft()
        return None

    def _early(self, fault: Fault, name: str, body: dict[str, Any]) -> Reply | None:
        """Faults that answer instead of processing; ``held`` is applied by the sale itself."""
        if fault.kind == "credentials":
            return _reply(body, messages=("Error", fault.code, CREDENTIAL_ERRORS[fault.code]))
        if fault.kind == "duplicate":
            return _reply(body, messages=("Error", "E00027", "The transaction was unsuccessful."),
                          transactionResponse=_response("3", "0", "11", "A duplicate transaction has been submitted."))
        if fault.kind == "5xx":
            return _spoil(Reply(200, ""), fault)
        return None

    def _process(self, name: str, body: dict[str, Any], fault: Fault | None) -> Reply:
        try:
            _check_schema(name, body)
            login = self._authenticate(body["merchantAuthentication"], name)
            handler: Callable[[str, dict[str, Any], Fault | None], Reply] = getattr(self, "_" + name)
            return handler(login, body, fault)
        except ApiError as exc:
            return _reply(body, messages=("Error", exc.code, exc.text))

    def _authenticate(self, auth: dict[str, Any], name: str) -> str:
        login, key = str(auth.get("name") or ""), str(auth.get("transactionKey") or "")
        if not login:
            raise ApiError("E00006", CREDENTIAL_ERRORS["E00006"])
        if not key:
            raise ApiError("E00005", CREDENTIAL_ERRORS["E00005"])
        account = self.accounts.get(login)
        if account is None or account.transaction_key != key:
            raise ApiError("E00007", CREDENTIAL_ERRORS["E00007"])
        if not account.permitted:
            raise ApiError("E00010", CREDENTIAL_ERRORS["E00010"])
        if name in DETAILS_REQUESTS and not account.details_api:
            raise ApiError("E00011", "Access denied. You do not have permissions to call the Transaction Details API.")
        return login

    def _createTransactionRequest(self, login: str, body: dict[str, Any], fault: Fault | None) -> Reply:
        request = body["transactionRequest"]
        kind = request["transactionType"]
        if kind == "authCaptureTransaction":
            return self._sale(login, body, request, held=fault is not None and fault.kind == "held")
        if kind == "voidTransaction":
            return self._void(login, body, request)
        if kind == "refundTransaction":
            return self._refund(login, body, request)
        raise ApiError("E00003", f"The transaction type '{kind}' is not supported by this stand-in.")

    def _sale(self, login: str, body: dict[str, Any], request: dict[str, Any], held: bool) -> Reply:
        card = (request.get("payment") or {}).get("creditCard")
        amount = _amount(request.get("amount"))
        if card is None:
            return _error(body, "33", "Credit card number is required.")
        number = card["cardNumber"]
        if amount is None:
            return _error(body, "5", "A valid amount is required.")
        if not (13 <= len(number) <= 16 and number.isdigit() and _luhn(number)):
            return _error(body, "6", "The credit card number is invalid.")
        if _expired(card["expirationDate"], self.clock()):
            return _error(body, "8", "The credit card has expired.")
        settings = _settings(request)
        invoice = (request.get("order") or {}).get("invoiceNumber", "")
        digest = hashlib.sha256(f"{number}|{card['expirationDate']}".encode()).hexdigest()
        original = self._duplicate_of(login, digest, amount, invoice, settings)
        if original is not None:
            return _reply(body, messages=("Error", "E00027", "The transaction was unsuccessful."),
                          transactionResponse=self._card_fields(original, _response(
                              "3", original.trans_id, "11", "A duplicate transaction has been submitted.")))
        if self.accounts[login].test_mode:
            return _reply(body, transactionResponse={**_response("1", "0", "1", "(TESTMODE) " + APPROVED_TEXT),
                                                     "testRequest": "1", "accountNumber": "XXXX" + number[-4:],
                                                     "accountType": _brand(number)})
        reason = _reason(number, amount, held)
        response_code, text = TRIGGERS.get(reason, ("1", APPROVED_TEXT))
        if reason == 295 and settings.get("allowPartialAuth") != "true":
            reason, (response_code, text) = 2, TRIGGERS[2]
        status = {"1": "capturedPendingSettlement", "2": "declined", "4": "FDSPendingReview"}.get(response_code,
                                                                                                  "generalError")
        if reason == 253:
            status = "FDSAuthorizedPendingReview"
        order = request.get("order") or {}
        item = Transaction(str(next(self.ids)), login, "authCaptureTransaction", status, amount, self.clock(),
                           invoice=invoice, description=order.get("description", ""), last4=number[-4:],
                           account_type=_brand(number), card_digest=digest, response_code=response_code,
                           reason_code=str(reason))
        self.transactions[item.trans_id] = item
        response = self._card_fields(item, _response(response_code, item.trans_id, str(reason), text),
                                     *AVS_CVV.get(reason, ("Y", "M")))
        if reason == 295:
            response["splitTenderId"] = str(next(self.ids))
            response["prePaidCard"] = {"requestedAmount": str(amount), "approvedAmount": str(amount / 2),
                                       "balanceOnCard": "0.00"}
        result = ("Error", "E00027", "The transaction was unsuccessful.") if response_code == "3" else None
        return _reply(body, messages=result, transactionResponse=response) if result else \
            _reply(body, transactionResponse=response)

    def _duplicate_of(self, login: str, digest: str, amount: Decimal, invoice: str,
                      settings: dict[str, str]) -> Transaction | None:
        window = min(int(settings.get("duplicateWindow") or DEFAULT_DUPLICATE_WINDOW), MAX_DUPLICATE_WINDOW)
        since = self.clock() - timedelta(seconds=window)
        for item in self.transactions.values():
            if (item.login, item.kind, item.card_digest, item.amount, item.invoice) == \
                    (login, "authCaptureTransaction", digest, amount, invoice) and item.submitted > since:
                return item
        return None

    def _void(self, login: str, body: dict[str, Any], request: dict[str, Any]) -> Reply:
        original = self._own(login, request.get("refTransId"))
        if original is not None and original.status == "voided":
            return _reply(body, transactionResponse=self._card_fields(
                original, _response("1", original.trans_id, "310", "This transaction has already been voided.")))
        if original is None or original.status not in ("capturedPendingSettlement", "FDSPendingReview",
                                                       "FDSAuthorizedPendingReview"):
            return _error(body, "16", "The transaction cannot be found.")
        original.status = "voided"
        return _reply(body, transactionResponse=self._card_fields(
            original, {**_response("1", original.trans_id, "1", APPROVED_TEXT), "refTransID": original.trans_id}))

    def _refund(self, login: str, body: dict[str, Any], request: dict[str, Any]) -> Reply:
        original = self._own(login, request.get("refTransId"))
        card = (request.get("payment") or {}).get("creditCard") or {}
        amount = _amount(request.get("amount"))
        if amount is None:
            return _error(body, "5", "A valid amount is required.")
        criteria = "The referenced transaction does not meet the criteria for issuing a credit."
        if original is None or original.status != "settledSuccessfully" or original.settled is None:
            return _error(body, "54", criteria)
        if str(card.get("cardNumber", ""))[-4:] != original.last4:
            return _error(body, "54", criteria)
        if self.clock() - original.settled > timedelta(days=REFUND_DAYS):
            return _error(body, "54", criteria)
        if original.refunded + amount > original.amount:
            return _error(body, "55", "The sum of credits against the referenced transaction would exceed "
                                      "original debit amount.")
        original.refunded += amount
        # The refund carries only the invoice number its own request sent, not the original's.
        item = Transaction(str(next(self.ids)), login, "refundTransaction", "refundPendingSettlement", amount,
                           self.clock(), invoice=(request.get("order") or {}).get("invoiceNumber", ""),
                           last4=original.last4,
                           account_type=original.account_type, ref_trans_id=original.trans_id)
        self.transactions[item.trans_id] = item
        return _reply(body, transactionResponse=self._card_fields(
            item, {**_response("1", item.trans_id, "1", APPROVED_TEXT), "refTransID": original.trans_id}))

    def _updateHeldTransactionRequest(self, login: str, body: dict[str, Any], fault: Fault | None) -> Reply:
        held = body["heldTransactionRequest"]
        item = self._own(login, held["refTransId"])
        if item is None or item.status not in NOT_IN_BATCH:
            return _error(body, "16", "The transaction cannot be found.")
        approve = held["action"] == "approve"
        item.status = "capturedPendingSettlement" if approve else "declined"
        return _reply(body, transactionResponse=self._card_fields(
            item, _response("1", item.trans_id, "1", APPROVED_TEXT if approve else "This transaction has been declined.")))

    def _getTransactionDetailsRequest(self, login: str, body: dict[str, Any], fault: Fault | None) -> Reply:
        item = self._own(login, body["transId"])
        if item is None:
            raise ApiError("E00040", "The record cannot be found.")
        details = {**self._listed(item), "transactionType": item.kind, "responseCode": int(item.response_code),
                   "responseReasonCode": int(item.reason_code), "authAmount": _money(item.amount),
                   "order": {"invoiceNumber": item.invoice, "description": item.description},
                   "payment": {"creditCard": {"cardNumber": "XXXX" + item.last4, "expirationDate": "XXXX",
                                              "cardType": item.account_type}}}
        if item.ref_trans_id:
            details["refTransId"] = item.ref_trans_id
        if item.batch_id:
            details["batch"] = {"batchId": item.batch_id, "settlementTimeUTC": _time(item.settled),
                                "settlementState": "settledSuccessfully"}
        return _reply(body, transaction=details)

    def _getUnsettledTransactionListRequest(self, login: str, body: dict[str, Any], fault: Fault | None) -> Reply:
        items = [t for t in self._visible(login) if not t.batch_id]
        if body.get("status") == "pendingApproval":
            items = [t for t in items if t.status in NOT_IN_BATCH]
        return self._page(body, items)

    def _getTransactionListRequest(self, login: str, body: dict[str, Any], fault: Fault | None) -> Reply:
        batch = next((b for b in self.batches if b.batch_id == body["batchId"]), None)
        if batch is None:
            raise ApiError("E00040", "The record cannot be found.")
        return self._page(body, [t for t in self._visible(login) if t.trans_id in batch.trans_ids])

    def _getSettledBatchListRequest(self, login: str, body: dict[str, Any], fault: Fault | None) -> Reply:
        first, last = body.get("firstSettlementDate"), body.get("lastSettlementDate")
        if (first is None) != (last is None):
            raise ApiError("E00003", "firstSettlementDate and lastSettlementDate must be given together.")
        start = _parse_time(first) if first else self.clock() - timedelta(days=1)
        end = _parse_time(last) if last else self.clock()
        if end - start > timedelta(days=BATCH_RANGE_DAYS) or end < start:
            raise ApiError("E00003", "The date range can not exceed 31 days.")
        found = [{"batchId": b.batch_id, "settlementTimeUTC": _time(b.settled), "settlementState": "settledSuccessfully",
                  "paymentMethod": "creditCard"} for b in self.batches
                 if start <= b.settled <= end and any(self.transactions[t].login == login for t in b.trans_ids)]
        if not found:
            return _reply(body, messages=("Ok", "I00004", "No records found."))
        return _reply(body, batchList=found)

    def _page(self, body: dict[str, Any], items: list[Transaction]) -> Reply:
        sorting = body.get("sorting") or {"orderBy": "submitTimeUTC", "orderDescending": "false"}
        key: Callable[[Transaction], Any] = (lambda t: int(t.trans_id)) if sorting["orderBy"] == "id" \
            else (lambda t: (t.submitted, int(t.trans_id)))
        items = sorted(items, key=key, reverse=sorting["orderDescending"] == "true")
        paging = body.get("paging")
        if paging:
            limit, offset = int(paging["limit"]), int(paging["offset"])
            items = items[(offset - 1) * limit:offset * limit]
        if not items:
            return _reply(body, messages=("Ok", "I00004", "No records found."))
        return _reply(body, transactions=[self._listed(t) for t in items], totalNumInResultSet=len(items))

    def _visible(self, login: str) -> list[Transaction]:
        """Lists lag behind: a transaction shows only ``list_delay`` after it was submitted."""
        cutoff = self.clock() - self.list_delay
        return [t for t in self.transactions.values() if t.login == login and t.submitted <= cutoff]

    def _own(self, login: str, trans_id: Any) -> Transaction | None:
        item = self.transactions.get(str(trans_id or ""))
        return item if item is not None and item.login == login else None

    @staticmethod
    def _listed(item: Transaction) -> dict[str, Any]:
        return {"transId": item.trans_id, "submitTimeUTC": _time(item.submitted),
                "submitTimeLocal": _time(item.submitted)[:-1], "transactionStatus": item.status,
                "invoiceNumber": item.invoice, "accountType": item.account_type,
                "accountNumber": "XXXX" + item.last4, "settleAmount": float(item.amount),
                "marketType": "eCommerce", "product": "Card Not Present"}

    @staticmethod
    def _card_fields(item: Transaction, response: dict[str, Any], avs: str = "P", cvv: str = "") -> dict[str, Any]:
        return {**response, "authCode": "" if response["responseCode"] != "1" else "QX7PL2", "avsResultCode": avs,
                "cvvResultCode": cvv, "cavvResultCode": "", "refTransID": response.get("refTransID", ""),
                "transHash": "", "testRequest": "0", "accountNumber": "XXXX" + item.last4,
                "accountType": item.account_type, "transHashSha2": ""}


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


def _cut(payload: bytes, sock: socket.socket) -> Iterator[bytes]:
    """Half the promised body, then the connection closes: what a network cut mid-answer looks like."""
    yield payload[:len(payload) // 2]
    sock.shutdown(socket.SHUT_RDWR)


def _spoil(reply: Reply, fault: Fault) -> Reply:
    if fault.kind == "5xx":
        return Reply(503, "<html><body>Service Unavailable</body></html>")
    if fault.kind == "truncated":
        return replace(reply, truncate=True)
    if fault.kind == "malformed":
        return Reply(200, BOM + reply.body.lstrip(BOM)[:-7] + "<br/>")
    if fault.kind == "empty":
        return Reply(200, BOM + "{}")
    if fault.kind == "slow":
        return replace(reply, delay=fault.seconds)
    return reply


def _parse(raw: str) -> tuple[str, dict[str, Any]]:
    try:
        document = json.loads(raw.lstrip(BOM))
    except json.JSONDecodeError as exc:
        raise ApiError("E00003", f"Unexpected character encountered while parsing value: {exc.msg}.") from None
    if not isinstance(document, dict) or len(document) != 1:
        raise ApiError("E00003", "The request must be one object naming one API call.")
    (name, body), = document.items()
    if name not in ORDER or not name.endswith("Request") or not isinstance(body, dict):
        raise ApiError("E00003", f"The element '{name}' is not declared.")
    return name, body


def _check_schema(name: str, element: Any) -> None:
    """Element order, required children and simple-type lengths, as the XML schema checks them."""
    if name in LISTS and isinstance(element, list):
        for item in element:
            _check_schema(name, item)
        return
    if name in ORDER:
        if not isinstance(element, dict):
            raise ApiError("E00003", f"The element '{name}' must have child elements.")
        order, last = ORDER[name], -1
        for child, value in element.items():
            if child not in order or order.index(child) < last:
                raise ApiError("E00003", f"The element '{name}' has invalid child element '{child}'.")
            last = order.index(child)
            _check_schema(child, value)
        for child in REQUIRED.get(name, ()):
            if child not in element:
                raise ApiError("E00003", f"The element '{name}' has incomplete content. List of possible elements "
                                         f"expected: '{child}'.")
        return
    _check_value(name, element)


def _check_value(name: str, value: Any) -> None:
    pattern = VALUES.get(name)
    if pattern is None:
        raise ApiError("E00003", f"The element '{name}' is not declared.")
    if not isinstance(value, (str, int)) or not re.fullmatch(pattern, str(value), re.DOTALL):
        raise ApiError("E00003", f"The '{name}' element is invalid - The value '{value}' is invalid according to "
                                 "its datatype - The actual length or format is not allowed.")
    low, high = PAGE_LIMITS.get(name, (None, None))
    if low is not None and not low <= int(value) <= high:  # type: ignore[operator]
        raise ApiError("E00003", f"The '{name}' element is invalid: {value} is out of range {low}-{high}.")


def _operation(name: str, body: dict[str, Any]) -> str:
    if name == "createTransactionRequest":
        kind = str((body.get("transactionRequest") or {}).get("transactionType", ""))
        return {"authCaptureTransaction": "sale", "voidTransaction": "void", "refundTransaction": "refund"}.get(kind, kind)
    return {"getTransactionDetailsRequest": "details", "getUnsettledTransactionListRequest": "unsettled",
            "getSettledBatchListRequest": "batches", "getTransactionListRequest": "batch",
            "updateHeldTransactionRequest": "held"}.get(name, name)


def _reason(number: str, amount: Decimal, held: bool) -> int:
    if held:
        return 252
    if number == DECLINE_CARD:
        return 2
    if number == TRIGGER_CARD and amount == amount.to_integral_value() and int(amount) in TRIGGERS:
        return int(amount)
    return 1


def _settings(request: dict[str, Any]) -> dict[str, str]:
    listed = (request.get("transactionSettings") or {}).get("setting") or []
    items = listed if isinstance(listed, list) else [listed]
    return {str(s["settingName"]): str(s.get("settingValue", "")) for s in items}


def _amount(value: Any) -> Decimal | None:
    """A positive amount with at most two decimals, or None (reason 5)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount > 0 and -amount.as_tuple().exponent <= 2 else None  # type: ignore[operator]


def _expired(expiry: str, now: datetime) -> bool:
    if expiry == "XXXX":
        return False
    year, month = (int(expiry[:4]), int(expiry[5:7])) if "-" in expiry else (2000 + int(expiry[-2:]), int(expiry[:2]))
    return (year, month) < (now.year, now.month) or not 1 <= month <= 12


def _luhn(number: str) -> bool:
    total = 0
    for index, digit in enumerate(int(d) for d in reversed(number)):
        total += digit if index % 2 == 0 else (digit * 2 - 9 if digit > 4 else digit * 2)
    return total % 10 == 0


def _brand(number: str) -> str:
    for prefix, brand in (("4", "Visa"), ("5", "MasterCard"), ("34", "AmericanExpress"), ("37", "AmericanExpress"),
                          ("6", "Discover")):
        if number.startswith(prefix):
            return brand
    return "Visa"


def _response(code: str, trans_id: str, reason: str, text: str) -> dict[str, Any]:
    """A transactionResponse: messages when approved or held, errors otherwise."""
    response: dict[str, Any] = {"responseCode": code, "transId": trans_id}
    if code in ("1", "4"):
        response["messages"] = [{"code": reason, "description": text}]
    else:
        response["errors"] = [{"errorCode": reason, "errorText": text}]
    return response


def _error(body: dict[str, Any], reason: str, text: str) -> Reply:
    """A refused transaction: responseCode 3 with no transaction behind it."""
    return _reply(body, messages=("Error", "E00027", "The transaction was unsuccessful."),
                  transactionResponse={**_response("3", "0", reason, text), "accountNumber": "", "accountType": ""})


def _reply(request: dict[str, Any] | None, messages: tuple[str, str, str] | None = None, **body: Any) -> Reply:
    result, code, text = messages or ("Ok", "I00001", "Successful.")
    payload = dict(body)
    if request and request.get("refId"):
        payload["refId"] = request["refId"]
    payload["messages"] = {"resultCode": result, "message": [{"code": code, "text": text}]}
    return Reply(200, BOM + json.dumps(payload))


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _time(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if moment else ""


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
