"""Issue 19, item 8: a partial refund of a charge that has not settled is refused by the gateway itself,
with the reason and when to retry, and alike for every processor."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Iterator

import pytest
import responses
from sqlalchemy import select

from gateway import create_app
from gateway.models import Charge, LedgerEntry, PostOrderRequest, SandboxCharge
from gateway.processors.authorizenet import PRODUCTION_URL
from gateway.processors.base import ProcessorUnavailable

from .. import factories
from ..protocol_helpers import PRIVATE_KEY, md5, post_json, signed_refund

NOT_SETTLED_WORDS = ("has not settled yet", "only a void of the whole $123.12", "usually within 24 hours")


def authorize_net_answers(request: Any) -> tuple[int, dict[str, str], str]:
    """Authorize.Net as it is before the nightly batch: the charge is captured, pending settlement, and a
    refund of it is refused with its bare error 54."""
    body = json.loads(request.body)
    if "getTransactionDetailsRequest" in body:
        answer = {"transaction": {"transId": "60123456789", "transactionStatus": "capturedPendingSettlement"}}
    else:
        answer = {"transactionResponse": {"responseCode": "3", "transId": "0", "errors": [{
            "errorCode": "54", "errorText": "The referenced transaction does not meet the criteria for issuing a credit."}]}}
    ok = {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}
    return 200, {}, json.dumps({**answer, "messages": ok})


@pytest.fixture(params=["sandbox", "authorizenet"])
def unsettled(request: pytest.FixtureRequest, settings: Any) -> Iterator[tuple[Any, Any, str, responses.RequestsMock]]:
    """A paid, unsettled charge of the example order at each processor: (client, services, its id, the processor's API)."""
    app = create_app(replace(settings, processor=request.param))
    services = app.extensions["gateway"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.add_callback(responses.POST, PRODUCTION_URL, callback=authorize_net_answers)
        with factories.bound(services):
            transactionid = factories.paid_charge().processor_transaction_id
        yield app.test_client(), services, transactionid, api
    services.db.dispose()


def test_partial_refund_of_an_unsettled_charge_says_it_has_not_settled_and_when_to_retry(unsettled):
    client, services, transactionid, api = unsettled
    answer = post_json(client, "/post-order", signed_refund(
        type="refund", transactionid=transactionid, amounttotal=2000, is_full_refund=False))
    assert answer["approved"] == 0 and answer["errorcode"] == "103"
    assert all(words in answer["errormessage"] for words in NOT_SETTLED_WORDS), answer["errormessage"]
    assert answer["signature"] == md5(answer["randomkey"], PRIVATE_KEY, 123, "AB-12234", "")
    assert not any("createTransactionRequest" in json.loads(call.request.body) for call in api.calls)  # no refund sent
    with services.db.transaction() as session:
        assert [(e.kind, e.outcome) for e in session.scalars(select(LedgerEntry))] == [("sale", "approved")]
        assert session.scalars(select(Charge)).one().refunded == 0
        assert session.scalars(select(PostOrderRequest)).one().state == "answered"
        assert session.scalars(select(SandboxCharge)).one().refunded == 0


def test_a_settlement_check_that_gets_no_answer_says_nothing_was_done(client, services):
    with factories.bound(services):
        transactionid = factories.paid_charge().processor_transaction_id

    def unreachable(*args: Any) -> bool:
        raise ProcessorUnavailable("timeout", merchant_message="the sandbox did not answer")

    services.processor.is_settled = unreachable
    answer = post_json(client, "/post-order", signed_refund(
        type="refund", transactionid=transactionid, amounttotal=2000, is_full_refund=False))
    assert answer["approved"] == 0 and answer["errorcode"] == "106"
    assert "nothing was done" in answer["errormessage"] and "held as pending" not in answer["errormessage"]
    with services.db.transaction() as session:
        assert [(e.kind, e.outcome) for e in session.scalars(select(LedgerEntry))] == [("sale", "approved")]
