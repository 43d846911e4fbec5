"""The OpenAPI document is generated from the wire schemas, committed, served, and fuzzed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gateway.protocol.jsonbody import BodyError, parse_object
from gateway.protocol.signing import sign
from gateway.web.openapi import build_spec

from ..protocol_helpers import PRIVATE_KEY

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_document_is_current():
    """docs/openapi.json is `gateway openapi` output; regenerate it when a schema changes."""
    assert json.loads(COMMITTED.read_text()) == json.loads(json.dumps(build_spec()))


def test_app_serves_the_document(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/checkout", "/post-order"}
    assert "CompleteOrderRequest" in document["components"]["schemas"]
    assert document["components"]["schemas"]["CheckoutRequest"]["properties"]["amounttotal"]["type"] == "integer"


@pytest.fixture
def api_schema(app):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


def _request_fields(body: object) -> dict:
    """The request as the gateway parsed it (numbers keep their wire text); {} if it was no JSON object."""
    try:
        return parse_object(body if isinstance(body, bytes) else json.dumps(body).encode())
    except (BodyError, TypeError, ValueError):
        return {}


def assert_signed(case, response) -> None:  # type: ignore[no-untyped-def]
    answer = response.json()
    if case.path == "/checkout":
        expected = sign(answer["randomkey"], PRIVATE_KEY, answer["paymenttoken"], answer["redirecturl"])
    else:
        # Signed over the request's own orderid and invoice where they were valid, else over "".
        sent = _request_fields(case.body)
        candidates = {
            sign(answer["randomkey"], PRIVATE_KEY, orderid, invoice, answer["transactionid"])
            for orderid in (sent.get("orderid", ""), "") for invoice in (sent.get("invoice", ""), "")
            if isinstance(orderid, str) and isinstance(invoice, str)
        }
        assert answer["signature"] in candidates, (case.body, answer)
        return
    assert answer["signature"] == expected, (case.body, answer)


@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck))  # max_examples and deadline: the profile (conftest)
def test_no_generated_input_gets_a_500_or_an_unsigned_answer(case):  # type: ignore[no-untyped-def]
    response = case.call()
    if case.method.upper() != "POST":  # schemathesis also probes methods the route does not allow
        assert response.status_code < 500
        return
    assert response.status_code == 200, response.text[:500]
    assert_signed(case, response)
