"""Reading a signed request from the platform: parse, validate, authenticate, or say exactly what is wrong."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError

from .errors import ErrorCode, ProtocolError
from .jsonbody import BodyError, parse_object
from .schemas import describe_errors
from .signing import verify


@dataclass(frozen=True)
class SignedRequest:
    """A validated request body: ``raw`` as received (for signatures), ``data`` as loaded."""

    raw: dict[str, Any]
    data: dict[str, Any]

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()


def load_signed(body: bytes, schema: Schema, private_key: str, signed_fields: tuple[str, ...], kind: str) -> SignedRequest:
    """Parse, validate and authenticate a request body, or raise a ProtocolError that says what is wrong."""
    try:
        raw = parse_object(body)
    except BodyError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, str(exc)) from exc
    try:
        data = schema.load(raw)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"invalid {kind}: {describe_errors(exc.messages)}") from exc
    if not verify(raw["signature"], raw["randomkey"], private_key, *(raw[name] for name in signed_fields)):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"signature does not match md5(randomkey + private key + {' + '.join(signed_fields)})",
        )
    return SignedRequest(raw, data)
