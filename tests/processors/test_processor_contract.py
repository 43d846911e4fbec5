"""One behavioural contract, run against every connector: the sandbox, and Authorize.Net through a
strict stand-in for its API (tests/processors/fake_authorizenet.py, as a ``responses`` callback), so
the payment state machine can rely on the same answers whichever processor is configured."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
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

from .fake_authorizenet import FakeAuthorizeNet, Fault, ManualClock

GOOD, BAD = Credentials("merchant", "key"), Credentials("invalid", "key")
APPROVE, DECLINE, OTHER_CARD = "4242424242424242", "4000000000000002", "5555555555554444"


def sale(reference: str = "ps1a1", number: str = APPROVE, credentials: Credentials = GOOD,
         invoice: str = "") -> SaleRequest:
    card = Card(number=number, exp_month=12, exp_year=2039, cvc="123", holder="Ada", brand="visa")
    return SaleRequest(amount=5000, currency="USD", card=card, credentials=credentials, reference=reference,
                       invoice=invoice or f"INV-{reference}", orderid=7)


def lookup(request: SaleRequest, submitted_at: datetime) -> SaleLookup:
    return SaleLookup(request.reference, request.invoice, request.amount, request.currency, request.credentials,
                      orderid=request.orderid, submitted_at=submitted_at, card_last4=request.card.last4)


def ref(charge_id: str) -> ChargeRef:
    return ChargeRef(charge_id, 5000, "USD", "4242", 12, 2039)


@dataclass
class Connector:
    """A processor, and what a test does to the world around it."""

    processor: Processor
    settle: Callable[[], object]
    go_offline: Callable[[], None]
    now: Callable[[], datetime] = utcnow  # the processor's clock: when an attempt begins
    wait: Callable[[float], None] = lambda seconds: None  # let the processor's clock run
    refuse_login: Callable[[str], Credentials] = field(default=lambda code: BAD)  # credentials refused with code

    def look_up(self, request: SaleRequest, submitted_at: datetime | None = None) -> Found:
        """A crash lookup as the delivery worker makes it, after new transactions had time to show in lists."""
        self.wait(60)
        return self.processor.find_sale(lookup(request, submitted_at or self.now() - timedelta(seconds=60))).found


@pytest.fixture(params=["sandbox", "authorizenet"])
def connector(request: pytest.FixtureRequest, services: Any) -> Iterator[Connector]:
    if request.param == "sandbox":
        yield Connector(services.processor, services.processor.settle, lambda: pytest.skip("the sandbox is never offline"))
        return
    # The stand-in's clock lags the real one by a day, so the test can let it run without reaching
    # the connector's own "now" (it asks for settled batches up to the real time).
    clock = ManualClock(utcnow() - timedelta(days=1))
    fake = FakeAuthorizeNet(clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, PRODUCTION_URL, callback=fake.handle)

        def offline() -> None:
            mock.replace(responses.POST, PRODUCTION_URL, body=requests.ConnectionError("down"))

        def refuse(code: str) -> Credentials:
            fake.script("any", Fault.credentials(code))
            return GOOD

        yield Connector(AuthorizeNetProcessor(), fake.settle, offline, now=clock,
                        wait=lambda seconds: clock.advance(seconds=seconds), refuse_login=refuse)


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
    connector.wait(60)
    result = connector.processor.find_sale(lookup(request, connector.now() - timedelta(seconds=60)))
    assert result.found is Found.FOUND and result.charge.processor_transaction_id == charge.processor_transaction_id  # type: ignore[union-attr]


def test_a_crash_lookup_finds_a_sale_that_has_settled_since(connector: Connector) -> None:
    request = sale()
    charge = connector.processor.sale(request)
    connector.settle()
    connector.wait(60)
    result = connector.processor.find_sale(lookup(request, connector.now() - timedelta(seconds=60)))
    assert result.found is Found.FOUND and result.charge.processor_transaction_id == charge.processor_transaction_id  # type: ignore[union-attr]


def test_a_crash_lookup_says_absent_only_when_nothing_was_charged(connector: Connector) -> None:
    connector.processor.sale(sale("ps1a1"))
    with pytest.raises(CardDeclined):
        connector.processor.sale(sale("ps2a1", number=DECLINE))
    assert connector.look_up(sale("ps2a1", number=DECLINE)) is Found.ABSENT


def test_a_crash_lookup_that_cannot_ask_is_unknown_never_absent(connector: Connector) -> None:
    request = sale()
    connector.go_offline()
    assert connector.look_up(request) is Found.UNKNOWN


def test_void_before_settlement(connector: Connector) -> None:
    charge = connector.processor.sale(sale())
    assert not connector.processor.is_settled(ref(charge.processor_transaction_id), GOOD)
    assert connector.processor.void(ref(charge.processor_transaction_id), GOOD).kind == "void"


def test_a_void_of_a_voided_charge_is_refused(connector: Connector) -> None:
    """Authorize.Net answers a second void with responseCode 1 and reason 310 ("already voided")."""
    charge = connector.processor.sale(sale())
    connector.processor.void(ref(charge.processor_transaction_id), GOOD)
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


def test_a_void_of_a_settled_charge_is_refused(connector: Connector) -> None:
    charge = connector.processor.sale(sale())
    connector.settle()
    with pytest.raises(AdjustmentRefused):
        connector.processor.void(ref(charge.processor_transaction_id), GOOD)


def test_a_refund_over_the_remaining_amount_is_refused(connector: Connector) -> None:
    charge = connector.processor.sale(sale())
    connector.settle()
    connector.processor.refund(ref(charge.processor_transaction_id), 4000, GOOD)
    with pytest.raises(AdjustmentRefused):
        connector.processor.refund(ref(charge.processor_transaction_id), 1001, GOOD)


def test_a_second_attempt_with_another_card_does_not_find_the_first_attempts_charge(connector: Connector) -> None:
    """The same order, paid first with one card, then (the process died) with another: the second
    attempt's lookup must not adopt the first attempt's charge."""
    connector.processor.sale(sale("ps1a1", invoice="INV-ps1"))
    second = sale("ps1a2", number=OTHER_CARD, invoice="INV-ps1")
    assert connector.look_up(second, submitted_at=connector.now()) is Found.ABSENT


def test_a_charge_submitted_before_the_attempt_started_is_not_adopted(connector: Connector) -> None:
    """Same order, same card, same amount, but charged a minute before this attempt began."""
    connector.processor.sale(sale("ps1a1", invoice="INV-ps1"))
    connector.wait(60)
    assert connector.look_up(sale("ps1a2", invoice="INV-ps1"), submitted_at=connector.now()) is Found.ABSENT


def test_the_same_sale_sent_twice_within_the_duplicate_window_is_charged_once(connector: Connector) -> None:
    request = sale()
    first = connector.processor.sale(request)
    connector.wait(30)
    assert connector.processor.sale(request).processor_transaction_id == first.processor_transaction_id


def test_a_declined_sale_is_not_found_by_a_lookup(connector: Connector) -> None:
    request = sale(number=DECLINE)
    with pytest.raises(CardDeclined):
        connector.processor.sale(request)
    assert connector.look_up(request) is Found.ABSENT


@pytest.mark.parametrize("code", ["E00005", "E00006", "E00007", "E00008", "E00010"])
def test_each_refusal_of_the_credentials_is_a_merchant_authentication_error(connector: Connector, code: str) -> None:
    with pytest.raises(MerchantAuthenticationError):
        connector.processor.sale(sale(credentials=connector.refuse_login(code)))


def test_refused_credentials_make_a_lookup_raise_not_answer(connector: Connector) -> None:
    with pytest.raises(MerchantAuthenticationError):
        connector.processor.find_sale(lookup(sale(credentials=BAD), connector.now()))
