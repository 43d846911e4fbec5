"""The OpenAPI 3 document of the server-to-server exchanges, generated from the wire schemas."""
from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from ..protocol.fields import Flag, Quantity, WholeNumber
from ..protocol.schemas import (
    CheckoutRequestSchema,
    CheckoutResponseSchema,
    CompleteOrderRequestSchema,
    CompleteOrderResponseSchema,
    RefundRequestSchema,
    RefundResponseSchema,
)

SIGNATURE_NOTE = (
    "md5 hex of the fields concatenated with no separator; the private key is the gateway "
    "application's Private Key from the 3dcart developer portal and never travels."
)


def _operation(summary: str, description: str, request: Any, response: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {
            "200": {
                "description": "Always a signed answer; failures carry errorcode and errormessage.",
                "content": {"application/json": {"schema": response}},
            }
        },
    }


def build_spec() -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="3dcart payment gateway application",
        version="1",
        openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": "The server-to-server exchanges of the 3dcart redirect gateway protocol. " + SIGNATURE_NOTE},
    )
    plugin.map_to_openapi_type(WholeNumber, "integer", None)  # type: ignore[no-untyped-call]
    plugin.map_to_openapi_type(Quantity, "number", None)  # type: ignore[no-untyped-call]
    plugin.map_to_openapi_type(Flag, "boolean", None)  # type: ignore[no-untyped-call]
    plugin.converter.add_attribute_function(_whole_number_bounds)  # type: ignore[union-attr]
    for name, schema in (
        ("CheckoutRequest", CheckoutRequestSchema),
        ("CheckoutResponse", CheckoutResponseSchema),
        ("CompleteOrderRequest", CompleteOrderRequestSchema),
        ("CompleteOrderResponse", CompleteOrderResponseSchema),
        ("RefundRequest", RefundRequestSchema),
        ("RefundResponse", RefundResponseSchema),
    ):
        spec.components.schema(name, schema=schema)
    spec.path(
        path="/checkout",
        operations={"post": _operation(
            "Gateway Checkout URL",
            "The store starts a sale. signature = md5(randomkey + private key + orderid + invoice + amounttotal); "
            "the answer's signature = md5(randomkey + private key + paymenttoken + redirecturl).",
            "CheckoutRequest", "CheckoutResponse")},
    )
    spec.path(
        path="/post-order",
        operations={"post": _operation(
            "Gateway Post-Order URL",
            "The merchant's Void/Refund. signature = md5(randomkey + private key + orderid + invoice + transactionid); "
            "the answer is signed the same way over its own transactionid.",
            "RefundRequest", "RefundResponse")},
    )
    document = spec.to_dict()
    document["webhooks"] = {
        "completeOrder": {"post": _operation(
            "The store's notificationurl",
            "Sent by the gateway when a payment ends. signature = md5(randomkey + private key + orderid + invoice + transactionid).",
            _ref("CompleteOrderRequest"), _ref("CompleteOrderResponse"))}
    }
    return document


def _whole_number_bounds(_converter: Any, field: Any, **_: Any) -> dict[str, int]:
    """The bounds a WholeNumber enforces before converting, so integrators see them."""
    if not isinstance(field, WholeNumber):
        return {}
    bounds = {"maximum": field.maximum}
    if field.minimum is not None:
        bounds["minimum"] = field.minimum
    return bounds


def _ref(name: str) -> dict[str, str]:
    """apispec resolves schema names in paths only; webhooks need explicit references."""
    return {"$ref": f"#/components/schemas/{name}"}
