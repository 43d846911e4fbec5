"""The one outbound HTTP call to a store: bounded in time and size, and refused for unsafe targets."""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from marshmallow import ValidationError

from ..observability.requestid import outgoing_headers
from ..protocol.jsonbody import BodyError, parse_object
from ..protocol.schemas import CompleteOrderResponseSchema, describe_errors

MAX_ANSWER_BYTES = 64 * 1024
SNIPPET_CHARS = 500
COMPLETE_ORDER_RESPONSE = CompleteOrderResponseSchema()


@dataclass(frozen=True)
class StoreAnswer:
    processed: bool
    errorcode: str
    errormessage: str


@dataclass(frozen=True)
class Exchange:
    """What one attempt saw, for the attempt log."""

    duration_ms: int
    http_status: int | None
    snippet: str
    answer: StoreAnswer | None
    error: str


class DeliveryFailure(Exception):
    """The store was reached but its answer cannot be used."""


class UnsafeDestination(ValueError):
    """The notification URL points somewhere a production gateway must not call."""


def check_destination(url: str, *, require_https: bool, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination(f"notification URL scheme {parts.scheme!r} is not http(s)")
    if require_https and parts.scheme != "https":
        raise UnsafeDestination("notification URL must use https")
    if allow_private:
        return
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeDestination(f"cannot resolve {host!r}: {exc.strerror}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise UnsafeDestination(f"{host!r} resolves to a non-public address {address}")


class StoreClient:
    def __init__(self, *, timeout: float, require_https: bool, allow_private: bool) -> None:
        self.timeout = timeout
        self.require_https = require_https
        self.allow_private = allow_private
        self.http = requests.Session()

    def post(self, url: str, payload: dict[str, Any]) -> Exchange:
        """POST the JSON payload; every outcome, good or bad, comes back as an Exchange."""
        started = time.monotonic()
        status: int | None = None
        body = b""
        try:
            check_destination(url, require_https=self.require_https, allow_private=self.allow_private)
            with self.http.post(
                url, json=payload, timeout=(min(5.0, self.timeout), self.timeout), stream=True, allow_redirects=False,
                headers=outgoing_headers(),
            ) as response:
                status = response.status_code
                body = _read_capped(response)
            if not 200 <= status < 300:
                raise DeliveryFailure(f"store answered HTTP {status}")
            answer = parse_answer(body)
            return Exchange(_elapsed(started), status, _snippet(body), answer, "")
        except (requests.RequestException, UnsafeDestination, DeliveryFailure) as exc:
            return Exchange(_elapsed(started), status, _snippet(body), None, _describe(exc))


def parse_answer(body: bytes) -> StoreAnswer:
    try:
        data = COMPLETE_ORDER_RESPONSE.load(parse_object(body))
    except BodyError as exc:
        raise DeliveryFailure(f"store answer is not a CompleteOrderResponse: {exc}") from exc
    except ValidationError as exc:
        raise DeliveryFailure(f"store answer is not a CompleteOrderResponse: {describe_errors(exc.messages)}") from exc
    return StoreAnswer(data["processed"], str(data["errorcode"] or ""), str(data["errormessage"] or ""))


def _read_capped(response: requests.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(8192):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise DeliveryFailure(f"store answer is larger than {MAX_ANSWER_BYTES} bytes")
    return b"".join(chunks)


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "store did not answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect to the store"
    return str(exc)[:300]


def _snippet(body: bytes) -> str:
    return body[:SNIPPET_CHARS].decode("utf-8", errors="replace")


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


