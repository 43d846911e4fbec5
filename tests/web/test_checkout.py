"""Exchange 1: the Gateway Checkout URL, fed the text's own example CheckoutRequest."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from gateway.models import Payment

from ..protocol_helpers import (
    PRIVATE_KEY,
    assert_checkout_response_signed,
    md5,
    post_json,
    signed_checkout,
)


def count_sessions(services) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Payment))


def test_example_request_opens_a_session_and_answers_signed_redirect(client, services):
    answer = post_json(client, "/checkout", signed_checkout())

    assert answer["errormessage"] == "" and answer["errorcode"] == ""
    assert answer["redirecturl"] == "https://gateway.test/pay"
    assert answer["redirectmethod"] == "GET"
    assert len(answer["paymenttoken"]) >= 40
    assert_checkout_response_signed(answer)
    with services.db.transaction() as session:
        payment = session.scalars(select(Payment)).one()
    assert (payment.orderid, payment.invoice, payment.amount_total, payment.currency) == (123, "AB-12234", 12312, "USD")
    assert [item["itemname"] for item in payment.items] == ["item name 123", "item name abc", "item name xyz"]
    assert "password1" not in payment.credentials_sealed and "user1" not in payment.credentials_sealed
    assert services.vault.open(payment.credentials_sealed).secret == "password1"


def test_each_response_has_a_fresh_randomkey(client):
    first = post_json(client, "/checkout", signed_checkout(orderid=1))
    second = post_json(client, "/checkout", signed_checkout(orderid=2))
    assert first["randomkey"] != second["randomkey"]
    assert first["paymenttoken"] != second["paymenttoken"]


@pytest.mark.parametrize(
    "field, value",
    [("orderid", 124), ("invoice", "AB-99999"), ("amounttotal", 1), ("randomkey", "other-key")],
)
def test_tampering_with_any_signed_field_is_refused(client, services, field, value):
    body = signed_checkout()
    body[field] = value
    answer = post_json(client, "/checkout", body)
    assert answer["errorcode"] == "100"
    assert "signature" in answer["errormessage"]
    assert answer["redirecturl"] == "" and answer["paymenttoken"] == ""
    assert answer["signature"] == md5(answer["randomkey"], PRIVATE_KEY, "", "")
    assert count_sessions(services) == 0


def test_signature_is_checked_case_insensitively(client):
    body = signed_checkout()
    body["signature"] = body["signature"].upper()
    assert post_json(client, "/checkout", body)["errormessage"] == ""


def test_signature_made_with_another_key_is_refused(client):
    body = signed_checkout()
    body["signature"] = md5(body["randomkey"], "not-our-key", 123, "AB-12234", 12312)
    assert post_json(client, "/checkout", body)["errorcode"] == "100"


def test_amount_is_signed_as_its_wire_text(client, services):
    # 12312.00 is the same number of cents as 12312 but a different signature text.
    body = signed_checkout()
    raw = json.dumps(body).replace('"amounttotal": 12312', '"amounttotal": 12312.00')
    assert post_json(client, "/checkout", raw)["errorcode"] == "100"
    body["signature"] = md5(body["randomkey"], PRIVATE_KEY, 123, "AB-12234", "12312.00")
    raw = json.dumps(body).replace('"amounttotal": 12312', '"amounttotal": 12312.00')
    assert post_json(client, "/checkout", raw)["errormessage"] == ""
    with services.db.transaction() as session:
        assert session.scalars(select(Payment)).one().amount_total == 12312


def test_amounts_as_decimal_text_are_accepted(client, services):
    body = signed_checkout(amounttotal="12312", taxtotal="1000")
    assert post_json(client, "/checkout", body)["errormessage"] == ""
    with services.db.transaction() as session:
        payment = session.scalars(select(Payment)).one()
    assert (payment.amount_total, payment.tax_total) == (12312, 1000)


def test_fractional_cents_are_refused_with_the_field_named(client):
    answer = post_json(client, "/checkout", signed_checkout(amounttotal="123.12"))
    assert answer["errorcode"] == "100"
    assert "amounttotal" in answer["errormessage"] and "whole number" in answer["errormessage"]


def test_unknown_fields_are_ignored(client):
    answer = post_json(client, "/checkout", signed_checkout(testmode=1, brand_new_field={"x": 1}))
    assert answer["errormessage"] == ""


@pytest.mark.parametrize("missing", ["orderid", "invoice", "amounttotal", "currency", "notificationurl", "returnurl",
                                     "errorurl", "cancelurl", "username", "password", "randomkey"])
def test_missing_field_is_named_in_the_error(client, services, missing):
    body = signed_checkout()
    del body[missing]
    answer = post_json(client, "/checkout", body)
    assert answer["errorcode"] == "100"
    assert missing in answer["errormessage"]
    assert count_sessions(services) == 0


def test_missing_signature_is_refused(client):
    body = signed_checkout()
    del body["signature"]
    answer = post_json(client, "/checkout", body)
    assert answer["errorcode"] == "100" and "signature" in answer["errormessage"]


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"orderid": "abc"}, "orderid"),
        ({"orderid": -5}, "orderid"),
        ({"amounttotal": 0}, "amounttotal"),
        ({"currency": "XYZ"}, "unsupported currency"),
        ({"notificationurl": "not a url"}, "notificationurl"),
        ({"notificationurl": "ftp://example.com/x"}, "notificationurl"),
        ({"items": [{"itemname": "x", "unitprice": 1, "quantity": 0}]}, "items.0.quantity"),
        ({"billing": "nope"}, "billing"),
    ],
)
def test_malformed_fields_get_a_specific_error(client, overrides, words):
    answer = post_json(client, "/checkout", signed_checkout(**overrides))
    assert answer["errorcode"] == "100"
    assert words in answer["errormessage"]


def test_wrong_type_is_refused(client):
    answer = post_json(client, "/checkout", signed_checkout(type="void"))
    assert answer["errorcode"] == "100"
    assert "type must be 'sale'" in answer["errormessage"]


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'{"a": NaN}', b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object_get_a_signed_error(client, body):
    answer = post_json(client, "/checkout", body)
    assert answer["errorcode"] == "100"
    assert answer["signature"] == md5(answer["randomkey"], PRIVATE_KEY, "", "")


def test_oversized_body_gets_a_signed_error(client):
    answer = post_json(client, "/checkout", b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert answer["errorcode"] == "100" and "too large" in answer["errormessage"]


def test_retry_of_the_same_request_returns_the_same_session(client, services):
    body = signed_checkout()
    first = post_json(client, "/checkout", body)
    second = post_json(client, "/checkout", body)
    assert first["paymenttoken"] == second["paymenttoken"]
    assert count_sessions(services) == 1


def test_reused_randomkey_with_a_different_body_is_refused(client, services):
    post_json(client, "/checkout", signed_checkout())
    answer = post_json(client, "/checkout", signed_checkout(amounttotal=999, randomkey="abc321123xyz"))
    assert answer["errorcode"] == "100" and "already used" in answer["errormessage"]
    assert count_sessions(services) == 1


def test_same_order_number_from_two_stores_are_separate(client, services):
    post_json(client, "/checkout", signed_checkout())
    other = signed_checkout(notificationurl="https://other-store.example/notify", randomkey="other-store-rk")
    assert post_json(client, "/checkout", other)["errormessage"] == ""
    assert count_sessions(services) == 2


def test_redirect_method_is_configurable(settings):
    from dataclasses import replace

    from gateway import create_app

    app = create_app(replace(settings, redirect_method="POST"))
    answer = post_json(app.test_client(), "/checkout", signed_checkout())
    assert answer["redirectmethod"] == "POST"
    app.extensions["gateway"].db.dispose()
