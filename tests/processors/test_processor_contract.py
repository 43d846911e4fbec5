"""One behavioural contract, run against every connector: the sandbox, and Authorize.Net through a
stateful stand-in for its API (``responses``), so the payment state machine can rely on the same
answers whichever processor is configured."""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterator

import pytest
import requests
import responses

from gateway.cards import Card
from gateway.models import utcnow
from gateway.processors.authorizenet import PRODUCTION_URL, AuthorizeNetProcessor
from gateway.processors.base import (
    AdjustmentRefused,
    CardDeclined,
    ChargeRef,
    Found,
    MerchantAuthenticationError,
    Processor,
    SaleLookup,
    SaleRequest,
)
from gateway.vault import Credentials

GOOD, BAD = Credentials("merchant", "key"), Credentials("invalid", "key")
APPROVE, DECLINE = "4242424242424242", "4000000000000002"


def sale(reference: str = "ps1a1", number: str = APPROVE, credentials: Credentials = GOOD) -> SaleRequest:
    card = Card(number=number, exp_month=12, exp_year=2039, cvc="123", holder="Ada", brand="visa")
    return SaleRequest(amount=5000, currency="USD", card=card, credentials=credentials, reference=reference,
                       invoice=f"INV-{reference}", orderid=7)


def lookup(request: SaleRequest) -> SaleLookup:
    return SaleLookup(request.reference, request.invoice, request.amount, request.currency, request.credentials,
                      orderid=request.orderid, submitted_at=utcnow())


def ref(charge_id: str) -> ChargeRef:
    return ChargeRef(charge_id, 5000, "USD", "4242", 12, 2039)


@dataclass
class FakeAuthorizeNet:
    """Just enough of Authorize.Net's JSON API, kept in memory: charges, voids, refunds, lists, batches."""

    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(60001))

    def handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        (name, body), = json.loads(request.body).items()
        if body["merchantAuthentication"]["name"] == "invalid":
            return self._reply(messages=("Error", "E00007", "User authentication failed."))
        handler: Callable[[dict[str, Any]], tuple[int, dict[str, str], str]] = getattr(self, "_" + name)
        return handler(body)

    def settle(self) -> None:
        batch = [tid for tid, t in self.transactions.items() if t["transactionStatus"] == "capturedPendingSettlement"]
        for tid in batch:
            self.transactions[tid]["transactionStatus"] = "settledSuccessfully"
        self.batches.append(batch)

    def _createTransactionRequest(self, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        request = body["transactionRequest"]
        kind = request["transactionType"]
        if kind == "authCaptureTransaction":
            return self._charge(request)
        original = self.transactions.get(request["refTransId"])
        if kind == "voidTransaction":
            if original is None or original["transactionStatus"] != "capturedPendingSettlement" or original["refunded"]:
                return self._refused("16", "The transaction cannot be found or cannot be voided.")
            original["transactionStatus"] = "voided"
            return self._approved(self._new_id())
        amount = Decimal(request["amount"])
        if original is None or original["transactionStatus"] != "settledSuccessfully" \
                or original["refunded"] + amount > Decimal(str(original["settleAmount"])):
            return self._refused("54", "The referenced transaction does not meet the criteria for issuing a credit.")
        original["refunded"] += amount
        return self._approved(self._new_id())

    def _charge(self, request: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        number = request["payment"]["creditCard"]["cardNumber"]
        tid = self._new_id()
        approved = number != DECLINE
        self.transactions[tid] = {
            "transId": tid, "invoiceNumber": request["order"]["invoiceNumber"], "settleAmount": float(request["amount"]),
            "transactionStatus": "capturedPendingSettlement" if approved else "declined",
            "accountType": "Visa", "accountNumber": "XXXX" + number[-4:], "refunded": Decimal(0),
        }
        return self._approved(tid) if approved else self._refused("2", "This transaction has been declined.", "2")

    def _getTransactionDetailsRequest(self, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        return self._reply(transaction=_public(self.transactions[body["transId"]]))

    def _getUnsettledTransactionListRequest(self, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        unsettled = [t for t in self.transactions.values() if t["transactionStatus"] != "settledSuccessfully"]
        return self._reply(transactions=self._page(unsettled, body))

    def _getSettledBatchListRequest(self, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        return self._reply(batchList=[{"batchId": str(n)} for n in range(len(self.batches))])

    def _getTransactionListRequest(self, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        batch = [self.transactions[tid] for tid in self.batches[int(body["batchId"])]]
        return self._reply(transactions=self._page(batch, body))

    @staticmethod
    def _page(items: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
        limit, offset = int(body["paging"]["limit"]), int(body["paging"]["offset"])
        return [_public(item) for item in items[(offset - 1) * limit:offset * limit]]

    def _new_id(self) -> str:
        return str(next(self.ids))

    def _approved(self, tid: str) -> tuple[int, dict[str, str], str]:
        return self._reply(transactionResponse={"responseCode": "1", "transId": tid, "messages": [
            {"code": "1", "description": "This transaction has been approved."}]})

    def _refused(self, code: str, text: str, response_code: str = "3") -> tuple[int, dict[str, str], str]:
        return self._reply(messages=("Error", "E00027", "The transaction was unsuccessful."), transactionResponse={
            "responseCode": response_code, "transId": "0", "errors": [{"errorCode": code, "errorText": text}]})

    @staticmethod
    def _reply(messages: tuple[str, str, str] = ("Ok", "I00001", "Successful."), **body: Any) -> tuple[int, dict[str, str], str]:
        result, code, text = messages
        payload = {**body, "messages": {"resultCode": result, "message": [{"code": code, "text": text}]}}
        return 200, {}, "\ufeff" + json.dumps(payload)


def _public(transaction: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in transaction.items() if key != "refunded"}


@dataclass
class Connector:
    processor: Processor
    settle: Callable[[], object]
    go_offline: Callable[[], None]


@pytest.fixture(params=["sandbox", "authorizenet"])
def connector(request: pytest.FixtureRequest, services: Any) -> Iterator[Connector]:
    if request.param == "sandbox":
        yield Connector(services.processor, services.processor.settle, lambda: pytest.skip("the sandbox is never offline"))
        return
    fake = FakeAuthorizeNet()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, PRODUCTION_URL, callback=fake.handle)

        def offline() -> None:
            mock.replace(responses.POST, PRODUCTION_URL, body=requests.ConnectionError("down"))

        yield Connector(AuthorizeNetProcessor(), fake.settle, offline)


def test_an_approved_sale_is_a_charge_of_the_amount(connector: Connector) -> None:
    charge = connector.processor.sale(sale())
    assert (charge.amount, charge.currency, charge.card_last4) == (5000, "USD", "4242") and charge.processor_transaction_id


def test_a_declined_card_is_card_declined(connector: Connector) -> None:
    with pytest.raises(CardDeclined):
        connector.processor.sale(sale(number=DECLINE))


def test_refused_credentials_are_a_merchant_authentication_error(connector: Connector) -> None:
    with pytest.raises(MerchantAuthenticationError):
        connector.processor.sale(sale(credentials=BAD))


def test_a_crash_lookup_finds_the_sale(connector: Connector) -> None:
    request = sale()
    charge = connector.processor.sale(request)
    result = connector.processor.find_sale(lookup(request))
    assert result.found is Found.FOUND and result.charge.processor_transaction_id == charge.processor_transaction_id  # type: ignore[union-attr]


def test_a_crash_lookup_finds_a_sale_that_has_settled_since(connector: Connector) -> None:
    request = sale()
    charge = connector.processor.sale(request)
    connector.settle()
    result = connector.processor.find_sale(lookup(request))
    assert result.found is Found.FOUND and result.charge.processor_transaction_id == charge.processor_transaction_id  # type: ignore[union-attr]


def test_a_crash_lookup_says_absent_only_when_nothing_was_charged(connector: Connector) -> None:
    connector.processor.sale(sale("ps1a1"))
    with pytest.raises(CardDeclined):
        connector.processor.sale(sale("ps2a1", number=DECLINE))
    assert connector.processor.find_sale(lookup(sale("ps2a1"))).found is Found.ABSENT


def test_a_crash_lookup_that_cannot_ask_is_unknown_never_absent(connector: Connector) -> None:
    request = sale()
    connector.go_offline()
    assert connector.processor.find_sale(lookup(request)).found is Found.UNKNOWN


def test_void_before_settlement_and_not_twice(connector: Connector) -> None:
    charge = connector.processor.sale(sale())
    assert not connector.processor.is_settled(ref(charge.processor_transaction_id), GOOD)
    assert connector.processor.void(ref(charge.processor_transaction_id), GOOD).kind == "void"
    with pytest.raises(AdjustmentRefused):
        connector.processor.void(ref(charge.processor_transaction_id), GOOD)


def test_refunds_after_settlement_never_exceed_the_charge(connector: Connector) -> None:
    charge = connector.processor.sale(sale())
    connector.settle()
    assert connector.processor.is_settled(ref(charge.processor_transaction_id), GOOD)
    with pytest.raises(AdjustmentRefused):
        connector.processor.void(ref(charge.processor_transaction_id), GOOD)
    assert connector.processor.refund(ref(charge.processor_transaction_id), 3000, GOOD).amount == 3000
    with pytest.raises(AdjustmentRefused):
        connector.processor.refund(ref(charge.processor_transaction_id), 2001, GOOD)
    assert connector.processor.refund(ref(charge.processor_transaction_id), 2000, GOOD).amount == 2000


def test_a_refund_before_settlement_is_refused(connector: Connector) -> None:
    charge = connector.processor.sale(sale())
    with pytest.raises(AdjustmentRefused):
        connector.processor.refund(ref(charge.processor_transaction_id), 1000, GOOD)
