"""JSON parsing that keeps each number's original text, because signatures are over that text."""
from __future__ import annotations

import json
from typing import Any


class JsonNumber(str):
    """A JSON number kept as the exact text it was sent as (``123.10`` stays ``123.10``)."""

    __slots__ = ()


class BodyError(ValueError):
    """The request body is not a JSON object."""


def parse_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body into a dict whose numbers are :class:`JsonNumber`."""
    try:
        text = raw.decode("utf-8-sig")
        value = json.loads(
            text,
            parse_int=JsonNumber,
            parse_float=JsonNumber,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError as exc:
        raise BodyError("request body is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise BodyError(f"request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if not isinstance(value, dict):
        raise BodyError("request body must be a JSON object")
    return value


def _reject_constant(name: str) -> None:
    raise json.JSONDecodeError(f"{name} is not allowed", name, 0)
