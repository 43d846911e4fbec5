"""JSON parsing that keeps each number's original text, because signatures are over that text.

Everything here is bounded before anything is converted: the body's size (the app's
MAX_CONTENT_LENGTH), its nesting depth, and the strings' content. Numbers are kept as text and
only converted by the schema fields, after their own length check.
"""
from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 8  # the deepest wire object, CheckoutRequest.items[n], is 3 levels deep


class JsonNumber(str):
    """A JSON number kept as the exact text it was sent as (``123.10`` stays ``123.10``)."""

    __slots__ = ()


class BodyError(ValueError):
    """The request body is not a JSON object we can work with."""


def parse_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body into a dict whose numbers are :class:`JsonNumber` and whose text is valid."""
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
    except RecursionError as exc:
        raise BodyError(f"request body is nested more than {MAX_DEPTH} levels deep") from exc
    except json.JSONDecodeError as exc:
        raise BodyError(f"request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if not isinstance(value, dict):
        raise BodyError("request body must be a JSON object")
    _check_tree(value, "", 1)
    return value


def _check_tree(value: Any, path: str, depth: int) -> None:
    """Refuse what no field may hold: deep nesting, lone surrogates, NUL characters."""
    if depth > MAX_DEPTH:
        raise BodyError(f"request body is nested more than {MAX_DEPTH} levels deep (at {path or 'the top'})")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{path}.{key}" if path else "a field name")
            _check_tree(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_tree(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, str) and not isinstance(value, JsonNumber):
        _check_text(value, path)


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise BodyError(f"{_printable(path)} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BodyError(f"{_printable(path)} contains a lone surrogate escape, which is not valid Unicode") from exc


def _printable(path: str) -> str:
    """A field path safe to echo back: surrogates and control characters escaped, length capped."""
    return path.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")[:100]


def _reject_constant(name: str) -> None:
    raise json.JSONDecodeError(f"{name} is not allowed", name, 0)
