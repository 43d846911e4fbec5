"""Reading a signed request from the platform: parse, validate, authenticate, or say exactly what is wrong."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Sequence

from marshmallow import Schema, ValidationError

from .errors import ErrorCode, ProtocolError
from .jsonbody import BodyError, parse_object
from .schemas import describe_errors
from .signing import verify_any


@dataclass(frozen=True)
class SignedRequest:
    """A validated request body: ``raw`` as received (for signatures), ``data`` as loaded."""

    raw: dict[str, Any]
    data: dict[str, Any]

    def digest(self, key: str) -> str:
        """A keyed fingerprint of the whole body: it holds the merchant's password, so no plain hash."""
        canonical = json.dumps(self.raw, sort_keys=True).encode()
        return hmac.new(b"request:" + key.encode(), canonical, hashlib.sha256).hexdigest()

    def echo(self, names: tuple[str, ...]) -> dict[str, str]:
        return {name: str(self.raw.get(name, "")) for name in names}


def load_signed(
    body: bytes, schema: Schema, private_keys: Sequence[str], signed_fields: tuple[str, ...], kind: str, echo: tuple[str, ...] = ()
) -> SignedRequest:
    """Parse, validate and authenticate a request body, or raise a ProtocolError that says what is wrong.

    ``echo`` names the fields an error answer is signed over; only those that validated are echoed.
    ``private_keys``: the current Private Key, then any still accepted while it rotates.
    """
    try:
        raw = parse_object(body)
    except BodyError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, str(exc)) from exc
    try:
        data = schema.load(raw)
    except ValidationError as exc:
        valid = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        safe = {name: str(raw[name]) for name in echo if name in valid and name in raw}
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"invalid {kind}: {describe_errors(exc.messages)}", safe) from exc
    request = SignedRequest(raw, data)
    if not verify_any(raw["signature"], raw["randomkey"], private_keys, *(raw[name] for name in signed_fields)):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"signature does not match md5(randomkey + private key + {' + '.join(signed_fields)})",
            request.echo(echo),
        )
    return request
