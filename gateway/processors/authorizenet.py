"""Authorize.Net connector, on its JSON API (https://developer.authorize.net/api/reference/).

The merchant's Credential 1 and 2 are the API Login ID and Transaction Key. Requests are JSON
objects whose keys must follow the order of Authorize.Net's XML schema, so they are built in
that order. Answers begin with a UTF-8 byte-order mark and carry messages in two places: the
top-level ``messages`` and, for transactions, ``transactionResponse.messages/errors``.

A sale that times out is sent once more, unchanged: Authorize.Net's duplicate window recognises
it and, if the first went through, answers with the original transaction instead of charging
again. If that still gives no answer, the outcome is reported unknown and :meth:`find_sale`
settles it later: it reads every page of the unsettled transactions and every settled batch
since the attempt, and says "absent" only when all of that was read; any gap is "unknown".

Full voids and refunds, the crash lookup and the duplicate check rely on the Transaction Details
API, which the merchant must enable in the Authorize.Net account (Account > Settings > Transaction
Details API); without it Authorize.Net answers E00011, reported as exactly that.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterator

import requests

from ..cards import CardAcceptance
from ..money import minor_digits
from ..observability.requestid import outgoing_headers
from ..vault import Credentials
from .base import (
    Adjustment,
    AdjustmentRefused,
    CardDeclined,
    ChargeRef,
    MerchantAuthenticationError,
    OutcomeUnknown,
    ProcessorCharge,
    ProcessorError,
    ProcessorUnavailable,
    SaleLookup,
    SaleLookupResult,
    SaleRequest,
)

log = logging.getLogger(__name__)
PRODUCTION_URL = "https://api.authorize.net/xml/v1/request.api"
SANDBOX_URL = "https://apitest.authorize.net/xml/v1/request.api"
# Long enough to catch our own resend after a timeout; short, because the CVC is not part of the
# duplicate check and a shopper who mistyped it must soon be able to try the same card again.
DUPLICATE_WINDOW_SECONDS = 300
APPROVED, DECLINED, ERROR, HELD = "1", "2", "3", "4"
DUPLICATE = "11"
AUTHENTICATION_CODES = {"E00007", "E00008", "13"}
DETAILS_API_DISABLED = "E00011"  # "Access denied. You do not have permissions to call the Transaction Details API."
# Reasons about the card that arrive with responseCode 3 (error) rather than 2 (declined).
CARD_ERRORS = {"6", "37", "8", "78"}
MAX_CARD_DIGITS = 16  # the schema's cardNumber: 13 to 16 digits
LIST_PAGE = 1000
MAX_PAGES = 20  # 20,000 transactions: beyond that the lookup says unknown rather than absent
SEARCH_DAYS = 30  # Authorize.Net lists settled batches over at most 31 days
SHOPPER_MESSAGES = {
    "6": "The card number is not valid.",
    "37": "The card number is not valid.",
    "8": "Your card has expired.",
    "27": "The billing address does not match the card.",
    "45": "The billing address or security code does not match the card.",
    "44": "Your card's security code is incorrect.",
    "65": "Your card's security code is incorrect.",
}
DECLINED_MESSAGE = "Your card was declined."
SETTINGS_BROKEN = "The store's payment settings are not working. Please contact the store."
UNSETTLED_CAPTURED = "capturedPendingSettlement"
CAPTURED = (UNSETTLED_CAPTURED, "settledSuccessfully")
HELD_STATUSES = ("FDSPendingReview", "FDSAuthorizedPendingReview")
NOT_CHARGED = ("declined", "voided", "expired", "failedReview", "generalError", "communicationError", "couldNotVoid")
BRANDS = {"Visa": "visa", "MasterCard": "mastercard", "AmericanExpress": "amex", "Discover": "discover",
          "DinersClub": "diners", "JCB": "jcb"}


class AuthorizeNetProcessor:
    name = "authorizenet"
    accepts = CardAcceptance(max_digits=MAX_CARD_DIGITS)

    def __init__(self, http: requests.Session | None = None, timeout: float = 20.0, force_test_mode: bool = False,
                 url: str = "") -> None:
        self.http = http or requests.Session()
        self.timeout = timeout
        self.force_test_mode = force_test_mode
        self.url = url  # one address for both modes (a stand-in); empty: Authorize.Net's own

    def sale(self, request: SaleRequest) -> ProcessorCharge:
        if len(request.card.number) > MAX_CARD_DIGITS:
            raise CardDeclined("This card cannot be used here. Please use another card.", code="card_not_supported",
                               merchant_message=f"Authorize.Net accepts card numbers of at most {MAX_CARD_DIGITS} digits")
        payload: dict[str, Any] = {"createTransactionRequest": {
            "merchantAuthentication": _auth(request.credentials),
            "refId": ref_id(request.reference),
            "transactionRequest": {
                "transactionType": "authCaptureTransaction",
                "amount": decimal_amount(request.amount, request.currency),
                "currencyCode": request.currency,
                "payment": {"creditCard": {
                    "cardNumber": request.card.number,
                    "expirationDate": f"{request.card.exp_year:04d}-{request.card.exp_month:02d}",
                    "cardCode": request.card.cvc,
                }},
                "order": {"invoiceNumber": invoice_number(request.invoice, request.orderid),
                          "description": f"3dcart order {request.orderid}"[:255]},
                "customer": {"email": request.email[:255]} if request.email else {},
                "transactionSettings": {"setting": [
                    {"settingName": "allowPartialAuth", "settingValue": "false"},
                    {"settingName": "duplicateWindow", "settingValue": str(DUPLICATE_WINDOW_SECONDS)},
                ]},
            },
        }}
        if not request.email:
            del payload["createTransactionRequest"]["transactionRequest"]["customer"]
        test = self._test(request.test_mode)
        try:
            answer = self._call(payload, test)
        except ProcessorUnavailable:
            log.warning("sale %s: no answer, sending it again for the duplicate check", ref_id(request.reference))
            try:
                answer = self._call(payload, test)
            except ProcessorUnavailable as exc:
                raise OutcomeUnknown(
                    "We are confirming your payment with the card network.",
                    merchant_message=f"Authorize.Net did not answer twice; the outcome of sale {request.invoice} is unknown",
                ) from exc
        return self._charge(answer, request, test)

    def void(self, charge: ChargeRef, credentials: Credentials) -> Adjustment:
        answer = self._transaction(credentials, charge.test_mode, {
            "transactionType": "voidTransaction",
            "refTransId": charge.processor_transaction_id,
        })
        return Adjustment(_trans_id(answer) or charge.processor_transaction_id, charge.amount, "void")

    def refund(self, charge: ChargeRef, amount: int, credentials: Credentials) -> Adjustment:
        answer = self._transaction(credentials, charge.test_mode, {
            "transactionType": "refundTransaction",
            "amount": decimal_amount(amount, charge.currency),
            "payment": {"creditCard": {"cardNumber": charge.card_last4, "expirationDate": "XXXX"}},
            "refTransId": charge.processor_transaction_id,
        })
        return Adjustment(_trans_id(answer), amount, "refund")

    def is_settled(self, charge: ChargeRef, credentials: Credentials) -> bool:
        answer = self._call({"getTransactionDetailsRequest": {
            "merchantAuthentication": _auth(credentials),
            "transId": charge.processor_transaction_id,
        }}, self._test(charge.test_mode))
        self._raise_top_level(answer, AdjustmentRefused)
        return bool(answer.get("transaction", {}).get("transactionStatus") == "settledSuccessfully")

    def find_sale(self, lookup: SaleLookup) -> SaleLookupResult:
        """Found, absent or unknown; "absent" only after every unsettled page and settled batch was read."""
        try:
            for item in self._candidates(lookup):
                status = item.get("transactionStatus")
                if status in CAPTURED:
                    number = str(item.get("accountNumber", ""))
                    return SaleLookupResult.of(ProcessorCharge(str(item["transId"]), lookup.amount, lookup.currency,
                                                      BRANDS.get(str(item.get("accountType", "")), "unknown"), number[-4:]))
                if status not in NOT_CHARGED:
                    return SaleLookupResult.unknown(f"transaction {item.get('transId')} is {status} at Authorize.Net "
                                                    "(held for review?): approve or decline it there")
        except MerchantAuthenticationError:
            raise
        except ProcessorError as exc:
            return SaleLookupResult.unknown(exc.merchant_message)
        return SaleLookupResult.absent()

    def _candidates(self, lookup: SaleLookup) -> Iterator[dict[str, Any]]:
        """Transactions with the sale's invoice number and amount, unsettled first, then settled batches."""
        invoice = invoice_number(lookup.invoice, lookup.orderid)
        amount = Decimal(decimal_amount(lookup.amount, lookup.currency))
        test = self._test(lookup.test_mode)
        for item in self._unsettled(lookup.credentials, test):
            if item.get("invoiceNumber") == invoice and Decimal(str(item.get("settleAmount", "0"))) == amount:
                yield item
        for batch_id in self._batches_since(lookup, test):
            for item in self._listed({"getTransactionListRequest": {
                "merchantAuthentication": _auth(lookup.credentials), "batchId": batch_id,
                "sorting": {"orderBy": "submitTimeUTC", "orderDescending": "true"}}}, test):
                if item.get("invoiceNumber") == invoice and Decimal(str(item.get("settleAmount", "0"))) == amount:
                    yield item

    def _unsettled(self, credentials: Credentials, test: bool) -> Iterator[dict[str, Any]]:
        return self._listed({"getUnsettledTransactionListRequest": {
            "merchantAuthentication": _auth(credentials),
            "sorting": {"orderBy": "submitTimeUTC", "orderDescending": "true"}}}, test)

    def _listed(self, request: dict[str, Any], test: bool) -> Iterator[dict[str, Any]]:
        """Every page of a transaction list; too many pages is an error, never a silent cut."""
        (name, body), = request.items()
        for page in range(1, MAX_PAGES + 1):
            answer = self._call({name: {**body, "paging": {"limit": str(LIST_PAGE), "offset": str(page)}}}, test)
            self._raise_top_level(answer, ProcessorUnavailable)
            items = answer.get("transactions") or []
            yield from items
            if len(items) < LIST_PAGE:
                return
        raise ProcessorUnavailable("too many transactions",
                                   merchant_message=f"more than {MAX_PAGES * LIST_PAGE} transactions to search")

    def _batches_since(self, lookup: SaleLookup, test: bool) -> list[str]:
        """Settled batches that may hold the sale: from the attempt's start until now."""
        now = datetime.now(timezone.utc)
        since = lookup.submitted_at
        if since is None or since < now - timedelta(days=SEARCH_DAYS):
            raise ProcessorUnavailable("attempt too old", merchant_message=(
                "the attempt's time is unknown or older than Authorize.Net's 31-day batch search"))
        answer = self._call({"getSettledBatchListRequest": {
            "merchantAuthentication": _auth(lookup.credentials),
            "firstSettlementDate": (since - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastSettlementDate": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }}, test)
        self._raise_top_level(answer, ProcessorUnavailable)
        return [str(batch["batchId"]) for batch in answer.get("batchList") or []]

    def _test(self, requested: bool) -> bool:
        return requested or self.force_test_mode

    def _transaction(self, credentials: Credentials, test: bool, transaction: dict[str, Any]) -> dict[str, Any]:
        """A void or refund: approved, or AdjustmentRefused with the processor's reason."""
        answer = self._call({"createTransactionRequest": {
            "merchantAuthentication": _auth(credentials),
            "transactionRequest": transaction,
        }}, test)
        response = answer.get("transactionResponse") or {}
        if response.get("responseCode") == APPROVED:
            return answer
        code, text = _first_error(answer)
        if code in AUTHENTICATION_CODES:
            raise _login_refused(text)
        raise AdjustmentRefused(f"Authorize.Net refused it: {text}", code=f"authorizenet_{code}")

    def _charge(self, answer: dict[str, Any], request: SaleRequest, test: bool) -> ProcessorCharge:
        response = answer.get("transactionResponse") or {}
        result = response.get("responseCode")
        code, raw_text = _first_error(answer)
        text = _redact(raw_text, request)
        if result == APPROVED and not _trans_id(answer):
            raise MerchantAuthenticationError(
                SETTINGS_BROKEN,
                merchant_message="the Authorize.Net account is in Test Mode: it approves without charging anything")
        if result == APPROVED:
            return ProcessorCharge(_trans_id(answer), request.amount, request.currency, request.card.brand, request.card.last4,
                          message=text or "Approved")
        original = self._status(_trans_id(answer), request.credentials, test) if code == DUPLICATE and _trans_id(answer) else ""
        if original in CAPTURED:
            # Our resend of a sale that went through: the answer names the original, which is our charge.
            return ProcessorCharge(_trans_id(answer), request.amount, request.currency, request.card.brand, request.card.last4,
                          message=text)
        if code in AUTHENTICATION_CODES:
            raise _login_refused(text)
        if result == HELD or original in HELD_STATUSES:
            self._decline_held(_trans_id(answer), request, test)
            raise CardDeclined("We could not complete this payment. Please use another card.", code="held_for_review",
                               merchant_message="held for review by Authorize.Net's fraud filters and declined")
        if code == DUPLICATE:
            raise CardDeclined("This card was declined a moment ago. Please use another card or wait a few minutes.",
                               code="duplicate", merchant_message=text)
        if result == DECLINED or (result == ERROR and code in CARD_ERRORS):
            raise CardDeclined(SHOPPER_MESSAGES.get(code, DECLINED_MESSAGE), code=f"authorizenet_{code}",
                               merchant_message=text)
        raise ProcessorError(SHOPPER_MESSAGES.get(code, "We could not process this card. Please try another card."),
                             code=f"authorizenet_{code}", merchant_message=f"Authorize.Net error {code}: {text}")

    def _status(self, trans_id: str, credentials: Credentials, test: bool) -> str:
        """The status of the transaction a duplicate answer names; unknown outcome if we cannot ask."""
        try:
            answer = self._call({"getTransactionDetailsRequest": {
                "merchantAuthentication": _auth(credentials), "transId": trans_id}}, test)
            self._raise_top_level(answer, ProcessorError)
        except ProcessorError as exc:
            raise OutcomeUnknown("We are confirming your payment with the card network.",
                                 merchant_message=f"duplicate of {trans_id} could not be checked: {exc.merchant_message}"
                                 ) from exc
        return str(answer.get("transaction", {}).get("transactionStatus") or "")

    def _decline_held(self, trans_id: str, request: SaleRequest, test: bool) -> None:
        """A sale held for review is not an approval: decline it, and make sure the decline took, or
        the merchant could approve later a charge we recorded as declined."""
        try:
            answer = self._call({"updateHeldTransactionRequest": {
                "merchantAuthentication": _auth(request.credentials),
                "heldTransactionRequest": {"action": "decline", "refTransId": trans_id},
            }}, test)
            self._raise_top_level(answer, ProcessorError)
            if (answer.get("transactionResponse") or {}).get("errors"):
                code, text = _first_error(answer)
                raise ProcessorError(text, merchant_message=f"Authorize.Net error {code}: {text}")
        except ProcessorError as exc:
            raise OutcomeUnknown(
                "We are confirming your payment with the card network.",
                merchant_message=f"transaction {trans_id} is held for review and could not be declined: "
                                 f"{exc.merchant_message}; approve or decline it in the Authorize.Net account",
            ) from exc

    def _raise_top_level(self, answer: dict[str, Any], error: type[ProcessorError]) -> None:
        messages = answer.get("messages") or {}
        if messages.get("resultCode") == "Ok":
            return
        code, text = _first_error(answer)
        if code in AUTHENTICATION_CODES:
            raise _login_refused(text)
        if code == DETAILS_API_DISABLED:
            raise error(SETTINGS_BROKEN, code="authorizenet_details_api_disabled", merchant_message=(
                f"Authorize.Net error {code}: the Transaction Details API is not enabled for this account; enable it "
                "(Account > Settings > Transaction Details API): full voids and refunds depend on it"))
        raise error(f"Authorize.Net error {code}: {text}", code=f"authorizenet_{code}")

    def _call(self, payload: dict[str, Any], test: bool) -> dict[str, Any]:
        url = self.url or (SANDBOX_URL if test else PRODUCTION_URL)
        try:
            response = self.http.post(url, data=json.dumps(payload), timeout=self.timeout,
                                      headers={"Content-Type": "application/json", **outgoing_headers()})
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise ProcessorUnavailable("The card network did not answer. Please try again.",
                                       merchant_message=f"Authorize.Net unreachable: {exc.__class__.__name__}") from None
        if response.status_code >= 500:
            raise ProcessorUnavailable("The card network did not answer. Please try again.",
                                       merchant_message=f"Authorize.Net answered HTTP {response.status_code}")
        try:
            answer = json.loads(response.content.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProcessorUnavailable("The card network did not answer. Please try again.",
                                       merchant_message="Authorize.Net's answer was not JSON") from exc
        if not isinstance(answer, dict):
            raise ProcessorUnavailable("The card network did not answer. Please try again.",
                                       merchant_message="Authorize.Net's answer was not a JSON object")
        return answer


def decimal_amount(amount: int, currency: str) -> str:
    """``12312`` cents -> ``"123.12"``, as Authorize.Net wants amounts."""
    return str(Decimal(amount).scaleb(-minor_digits(currency)))


def ref_id(reference: str) -> str:
    """Authorize.Net's refId holds 20 characters; longer references are hashed down, stably."""
    return reference if len(reference) <= 20 else hashlib.sha256(reference.encode()).hexdigest()[:20]


def _login_refused(text: str) -> MerchantAuthenticationError:
    return MerchantAuthenticationError(
        SETTINGS_BROKEN, merchant_message=f"Authorize.Net refused the API Login ID / Transaction Key: {text}"
    )


def invoice_number(invoice: str, orderid: int | None) -> str:
    """Authorize.Net keeps 20 characters; the end of an invoice number is what tells orders apart."""
    return (invoice or str(orderid or ""))[-20:]


def _redact(text: str, request: SaleRequest) -> str:
    """Validation messages may quote what was sent; the card number and CVC must not travel on."""
    for secret in (request.card.number, request.card.cvc):
        text = text.replace(secret, "[redacted]")
    return text


def _auth(credentials: Credentials) -> dict[str, str]:
    return {"name": credentials.login, "transactionKey": credentials.secret}


def _trans_id(answer: dict[str, Any]) -> str:
    trans_id = str((answer.get("transactionResponse") or {}).get("transId") or "")
    return "" if trans_id == "0" else trans_id


def _first_error(answer: dict[str, Any]) -> tuple[str, str]:
    """The most specific message: transaction errors, then transaction messages, then top-level ones."""
    response = answer.get("transactionResponse") or {}
    for error in response.get("errors") or []:
        return str(error.get("errorCode", "")), str(error.get("errorText", ""))
    top = (answer.get("messages") or {}).get("message") or []
    if (answer.get("messages") or {}).get("resultCode") == "Error" and top:
        return str(top[0].get("code", "")), str(top[0].get("text", ""))
    for message in response.get("messages") or []:
        return str(message.get("code", "")), str(message.get("description", ""))
    for message in top:
        return str(message.get("code", "")), str(message.get("text", ""))
    return "", ""
