"""Authorize.Net connector, on its JSON API (https://developer.authorize.net/api/reference/).

The merchant's Credential 1 and 2 are the API Login ID and Transaction Key. Requests are JSON
objects whose keys must follow the order of Authorize.Net's XML schema, so they are built in
that order. Answers begin with a UTF-8 byte-order mark and carry messages in two places: the
top-level ``messages`` and, for transactions, ``transactionResponse.messages/errors``.

A sale that gets no readable answer is sent once more, unchanged: Authorize.Net's duplicate window
recognises it and, if the first went through, answers with the original transaction instead of
charging again. If that still gives no answer, the outcome is reported unknown (unless neither
request ever left) and :meth:`find_sale` settles it later: it reads every page of the unsettled
transactions and every settled batch since the attempt, matches invoice, amount, the card's last
four and the submit time, and says "absent" only when all of that was read; any gap is "unknown".
What a transaction status means for the money is one table, :data:`SALE_STATUSES`.

Full voids and refunds, the crash lookup and the duplicate check rely on the Transaction Details
API, which the merchant must enable in the Authorize.Net account (Account > Settings > Transaction
Details API); without it Authorize.Net answers E00011, reported as exactly that.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Iterator, NoReturn

import requests
from urllib3.exceptions import NewConnectionError

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
# A void of a voided transaction is answered "approved" with this reason: nothing was voided now.
ALREADY_VOIDED = "310"
# Refused merchant credentials: key invalid (E00005), login invalid (E00006), authentication failed (E00007),
# account or user inactive (E00008), no permission (E00010), and reason 13 on a transaction.
AUTHENTICATION_CODES = {"E00005", "E00006", "E00007", "E00008", "E00010", "13"}
DETAILS_API_DISABLED = "E00011"  # "Access denied. You do not have permissions to call the Transaction Details API."
# Reasons about the card that arrive with responseCode 3 (error) rather than 2 (declined).
CARD_ERRORS = {"6", "37", "8", "78"}
MAX_CARD_DIGITS = 16  # the schema's cardNumber: 13 to 16 digits
LIST_PAGE = 1000
MAX_PAGES = 20  # 20,000 transactions: beyond that the lookup says unknown rather than absent
SEARCH_DAYS = 30  # Authorize.Net lists settled batches over at most 31 days
# A new transaction shows in the lists only after a short delay: "absent" is never said for an attempt
# younger than this (it may have been sent up to two timeouts after it began).
LISTED_AFTER = timedelta(minutes=2)
CLOCK_SKEW = timedelta(minutes=1)  # between our clock and Authorize.Net's submitTimeUTC
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
DECLINED_A_MOMENT_AGO = "This card was declined a moment ago. Please use another card or wait a few minutes."
HELD_DECLINED = "We could not complete this payment. Please use another card."
SETTINGS_BROKEN = "The store's payment settings are not working. Please contact the store."
NO_ANSWER = "The card network did not answer. Please try again."
CONFIRMING = "We are confirming your payment with the card network."


class SaleStatus(Enum):
    """What a sale's transactionStatus says about the shopper's money."""

    CHARGED = "charged"
    NOT_CHARGED = "not charged"
    HELD = "held for review"  # the merchant (or we, declining it) decide
    IN_FLIGHT = "may still become a charge"  # any status not listed: the outcome is unknown


# One table for the duplicate check and the crash lookup alike. Not listed, hence in flight:
# approvedReview, underReview, authorizedPendingCapture, settlementError, couldNotVoid, ...
SALE_STATUSES = {
    "capturedPendingSettlement": SaleStatus.CHARGED,
    "settledSuccessfully": SaleStatus.CHARGED,
    "declined": SaleStatus.NOT_CHARGED,
    "voided": SaleStatus.NOT_CHARGED,
    "expired": SaleStatus.NOT_CHARGED,
    "failedReview": SaleStatus.NOT_CHARGED,
    "generalError": SaleStatus.NOT_CHARGED,
    "communicationError": SaleStatus.NOT_CHARGED,
    "FDSPendingReview": SaleStatus.HELD,
    "FDSAuthorizedPendingReview": SaleStatus.HELD,
}
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
        answer, lost = self._send_sale(payload, request, test)
        return self._charge(answer, request, test, lost)

    def _send_sale(self, payload: dict[str, Any], request: SaleRequest, test: bool) -> tuple[dict[str, Any], bool]:
        """The sale's answer, and whether a first copy may have reached Authorize.Net unanswered.

        A copy that never left is simply sent again; one whose answer was lost is sent again, byte for
        byte, so that the duplicate window answers for the first. No answer to either: the outcome is
        unknown unless neither copy ever left."""
        try:
            return self._call(payload, test), False
        except ProcessorUnavailable as first:
            lost = isinstance(first, OutcomeUnknown)
            log.warning("sale %s: %s, sending it again", ref_id(request.reference), first.merchant_message)
        try:
            return self._call(payload, test), lost
        except ProcessorUnavailable as second:
            if not lost and not isinstance(second, OutcomeUnknown):
                raise ProcessorUnavailable(NO_ANSWER, merchant_message=(
                    f"Authorize.Net could not be reached twice, nothing was sent: {second.merchant_message}")) from second
            raise OutcomeUnknown(CONFIRMING, merchant_message=(
                f"Authorize.Net did not answer twice; the outcome of sale {request.invoice} is unknown: "
                f"{second.merchant_message}")) from second

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
        return bool((answer.get("transaction") or {}).get("transactionStatus") == "settledSuccessfully")

    def find_sale(self, lookup: SaleLookup) -> SaleLookupResult:
        """Found, absent or unknown; "absent" only after every unsettled page and settled batch was read,
        and only for an attempt old enough to be listed."""
        if not lookup.card_last4 or lookup.submitted_at is None:
            return SaleLookupResult.unknown("the attempt's card or start time is unknown: no sale can be told to be its own")
        try:
            for item in self._listings(lookup):
                result = _as_this_attempt(item, lookup)
                if result is not None:
                    return result
        except MerchantAuthenticationError:
            raise
        except ProcessorError as exc:
            return SaleLookupResult.unknown(exc.merchant_message)
        if datetime.now(timezone.utc) - lookup.submitted_at < LISTED_AFTER:
            return SaleLookupResult.unknown("the attempt is too recent for Authorize.Net to list it yet")
        return SaleLookupResult.absent()

    def _listings(self, lookup: SaleLookup) -> Iterator[dict[str, Any]]:
        """Every transaction that may be the sale: unsettled first, then those of settled batches since the attempt."""
        test = self._test(lookup.test_mode)
        yield from self._unsettled(lookup.credentials, test)
        for batch_id in self._batches_since(lookup, test):
            yield from self._listed({"getTransactionListRequest": {
                "merchantAuthentication": _auth(lookup.credentials), "batchId": batch_id,
                "sorting": {"orderBy": "submitTimeUTC", "orderDescending": "true"}}}, test)

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
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise OutcomeUnknown(CONFIRMING, merchant_message=f"Authorize.Net's {name} answer listed no transactions")
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
        code, text = _first_error(answer)
        if response.get("responseCode") == APPROVED and code != ALREADY_VOIDED:
            return answer
        if code in AUTHENTICATION_CODES:
            raise _login_refused(text)
        if _unreadable(answer):
            raise OutcomeUnknown(CONFIRMING, merchant_message=f"Authorize.Net's answer to a {transaction['transactionType']} "
                                 "carried no result: check the transaction in the Authorize.Net account")
        raise AdjustmentRefused(f"Authorize.Net refused it: {text}", code=f"authorizenet_{code}")

    def _charge(self, answer: dict[str, Any], request: SaleRequest, test: bool, lost: bool) -> ProcessorCharge:
        """The charge a sale's answer reports, or the error saying why there is none."""
        result = (answer.get("transactionResponse") or {}).get("responseCode")
        code, raw_text = _first_error(answer)
        text = _redact(raw_text, request)
        if result == APPROVED and not _trans_id(answer):
            raise MerchantAuthenticationError(
                SETTINGS_BROKEN,
                merchant_message="the Authorize.Net account is in Test Mode: it approves without charging anything")
        if result == APPROVED:
            return _approval(answer, request, text or "Approved")
        if code == DUPLICATE:
            return self._duplicate(answer, request, test, lost, text)
        if code in AUTHENTICATION_CODES:
            raise _login_refused(text)
        if result == HELD:
            self._refuse_held(_trans_id(answer), request, test)
        if result == DECLINED or (result == ERROR and code in CARD_ERRORS):
            raise CardDeclined(SHOPPER_MESSAGES.get(code, DECLINED_MESSAGE), code=f"authorizenet_{code}",
                               merchant_message=text)
        if _unreadable(answer):
            raise OutcomeUnknown(CONFIRMING, merchant_message=(
                f"Authorize.Net's answer to sale {request.invoice} carried no result; the outcome is unknown"))
        raise ProcessorError(SHOPPER_MESSAGES.get(code, "We could not process this card. Please try another card."),
                             code=f"authorizenet_{code}", merchant_message=f"Authorize.Net error {code}: {text}")

    def _duplicate(self, answer: dict[str, Any], request: SaleRequest, test: bool, lost: bool, text: str) -> ProcessorCharge:
        """Error 11: the same sale was submitted within the duplicate window; the original's status decides."""
        original = _trans_id(answer)
        if not original and lost:
            raise OutcomeUnknown(CONFIRMING, merchant_message=(
                f"the resend of sale {request.invoice} was refused as a duplicate without naming the original: "
                "the first request may have charged; the outcome is unknown"))
        status = self._status(original, request.credentials, test) if original else ""
        kind = SALE_STATUSES.get(status, SaleStatus.IN_FLIGHT) if original else SaleStatus.NOT_CHARGED
        if kind is SaleStatus.CHARGED:
            # Our resend of a sale that went through: the answer names the original, which is our charge.
            return _approval(answer, request, text)
        if kind is SaleStatus.HELD:
            self._refuse_held(original, request, test)
        if kind is SaleStatus.NOT_CHARGED:
            raise CardDeclined(DECLINED_A_MOMENT_AGO, code="duplicate", merchant_message=text)
        raise OutcomeUnknown(CONFIRMING, merchant_message=(
            f"sale {request.invoice} duplicates transaction {original}, which is {status or 'of no status'} at "
            "Authorize.Net and may still become a charge; the outcome is unknown"))

    def _status(self, trans_id: str, credentials: Credentials, test: bool) -> str:
        """The status of the transaction a duplicate answer names; unknown outcome if we cannot ask."""
        try:
            answer = self._call({"getTransactionDetailsRequest": {
                "merchantAuthentication": _auth(credentials), "transId": trans_id}}, test)
            self._raise_top_level(answer, ProcessorError)
        except ProcessorError as exc:
            raise OutcomeUnknown(CONFIRMING, merchant_message=f"duplicate of {trans_id} could not be checked: {exc.merchant_message}"
                                 ) from exc
        return str((answer.get("transaction") or {}).get("transactionStatus") or "")

    def _refuse_held(self, trans_id: str, request: SaleRequest, test: bool) -> NoReturn:
        """A held sale is a decline for the shopper once our decline of it took (else an unknown outcome)."""
        self._decline_held(trans_id, request, test)
        raise CardDeclined(HELD_DECLINED, code="held_for_review",
                           merchant_message="held for review by Authorize.Net's fraud filters and declined")

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
                CONFIRMING,
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
        """Authorize.Net's answer as a JSON object. ProcessorUnavailable if the request never left;
        OutcomeUnknown if it may have been carried out but no readable answer came back."""
        url = self.url or (SANDBOX_URL if test else PRODUCTION_URL)
        try:
            response = self.http.post(url, data=json.dumps(payload), timeout=self.timeout,
                                      headers={"Content-Type": "application/json", **outgoing_headers()})
            body = response.content
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise ProcessorUnavailable(NO_ANSWER, merchant_message=(
                    f"Authorize.Net unreachable: {exc.__class__.__name__}")) from None
            raise OutcomeUnknown(CONFIRMING, merchant_message=(
                f"Authorize.Net's answer was lost: {exc.__class__.__name__}")) from None
        if response.status_code >= 500:
            raise OutcomeUnknown(CONFIRMING, merchant_message=f"Authorize.Net answered HTTP {response.status_code}")
        try:
            answer = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise OutcomeUnknown(CONFIRMING, merchant_message="Authorize.Net's answer was not JSON") from exc
        if not isinstance(answer, dict) or not (isinstance(answer.get("messages"), dict)
                                                or isinstance(answer.get("transactionResponse"), dict)):
            raise OutcomeUnknown(CONFIRMING, merchant_message=(
                "Authorize.Net's answer was not an object with messages or a transaction response"))
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


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request certainly never left: no connection was made (refused, unresolvable host,
    connect timeout) or the address is malformed. Anything else may have been carried out."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(getattr(cause, "reason", cause), NewConnectionError)


def _unreadable(answer: dict[str, Any]) -> bool:
    """A transaction's answer with no result code and no top-level error: nothing can be told from it."""
    result = (answer.get("transactionResponse") or {}).get("responseCode")
    return result not in (APPROVED, DECLINED, ERROR, HELD) and (answer.get("messages") or {}).get("resultCode") != "Error"


def _approval(answer: dict[str, Any], request: SaleRequest, text: str) -> ProcessorCharge:
    response = answer.get("transactionResponse") or {}
    return ProcessorCharge(_trans_id(answer), request.amount, request.currency, request.card.brand, request.card.last4,
                           message=text, avs_result=str(response.get("avsResultCode") or ""),
                           cvv_result=str(response.get("cvvResultCode") or ""))


def _as_this_attempt(item: dict[str, Any], lookup: SaleLookup) -> SaleLookupResult | None:
    """What a listed transaction says about the attempt: None when it is another sale (or one that
    charged nothing), else found, or unknown when it may be ours but cannot be told apart or is in flight."""
    if item.get("invoiceNumber") != invoice_number(lookup.invoice, lookup.orderid) or not _same_amount(item, lookup):
        return None
    trans_id = item.get("transId")
    last4 = str(item.get("accountNumber") or "")[-4:]
    submitted = _submit_time(item)
    if last4 and last4 != lookup.card_last4:
        return None
    if submitted is not None and lookup.submitted_at is not None and submitted < lookup.submitted_at - CLOCK_SKEW:
        return None
    if not last4 or submitted is None:
        return SaleLookupResult.unknown(f"transaction {trans_id} has our invoice and amount but no card or time to "
                                        "tell whether it is this attempt's: check it in the Authorize.Net account")
    status = str(item.get("transactionStatus") or "")
    kind = SALE_STATUSES.get(status, SaleStatus.IN_FLIGHT)
    if kind is SaleStatus.CHARGED:
        return SaleLookupResult.of(ProcessorCharge(str(trans_id), lookup.amount, lookup.currency,
                                                   BRANDS.get(str(item.get("accountType", "")), "unknown"), last4))
    if kind is SaleStatus.NOT_CHARGED:
        return None
    return SaleLookupResult.unknown(f"transaction {trans_id} is {status} at Authorize.Net ({kind.value}): "
                                    "approve or decline it there")


def _same_amount(item: dict[str, Any], lookup: SaleLookup) -> bool:
    try:
        return Decimal(str(item.get("settleAmount", "0"))) == Decimal(decimal_amount(lookup.amount, lookup.currency))
    except InvalidOperation:
        return False


def _submit_time(item: dict[str, Any]) -> datetime | None:
    """submitTimeUTC ("2026-11-30T14:05:09Z", maybe with fractions of a second), or None if absent or unreadable."""
    try:
        moment = datetime.fromisoformat(str(item["submitTimeUTC"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
