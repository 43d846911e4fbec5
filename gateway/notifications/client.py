"""The one outbound HTTP call to a store: bounded in time and size, and refused for unsafe targets."""
from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from marshmallow import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from .. import admission, budget
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


NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
RESOLVE_TIMEOUT = 3.0
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


@dataclass(frozen=True)
class Destination:
    """A checked notification URL and the one address it was checked at (``None``: not pinned)."""

    url: str
    address: str | None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routed address that does not tunnel back to a private or loopback one."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return embedded.is_global
    return True


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a NAT64, 6to4, IPv4-mapped or Teredo address."""
    if any(address in prefix for prefix in NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]
    return None


def resolve(host: str, port: int, timeout: float = RESOLVE_TIMEOUT) -> list[str]:
    """The host's addresses, within a deadline (getaddrinfo itself has none)."""
    future = _resolver.submit(socket.getaddrinfo, host, port, proto=socket.IPPROTO_TCP)
    try:
        infos = future.result(timeout=timeout)
    except FutureTimeout as exc:
        raise UnsafeDestination(f"resolving {host!r} took longer than {timeout:g} s") from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeDestination(f"cannot resolve {host!r}") from exc
    return [str(info[4][0]) for info in infos]


def check_destination(url: str, *, require_https: bool, allow_private: bool) -> Destination:
    """Apply the delivery rules to a notification URL; return the address to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination(f"notification URL scheme {parts.scheme!r} is not http(s)")
    if require_https and parts.scheme != "https":
        raise UnsafeDestination("notification URL must use https")
    host = parts.hostname or ""
    if not host:
        raise UnsafeDestination("notification URL has no host")
    if allow_private:
        return Destination(url, None)
    addresses = resolve(host, parts.port or (443 if parts.scheme == "https" else 80), budget.cap(RESOLVE_TIMEOUT))
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public(address):
            raise UnsafeDestination(f"{host!r} resolves to a non-public address {address}")
    return Destination(url, addresses[0])


def _pinned(connection_class: type, address: str) -> type:
    class Pinned(connection_class):  # type: ignore[misc]
        """Opens its socket to ``address``; ``self.host`` stays the name, for Host, SNI and the certificate."""

        def _new_conn(self):  # type: ignore[no-untyped-def]
            try:
                return create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)
            except socket.timeout as exc:
                raise ConnectTimeoutError(self, f"connection to {self.host} ({address}) timed out") from exc
            except OSError as exc:
                raise NewConnectionError(self, f"failed to connect to {self.host} ({address}): {exc}") from exc

    return Pinned


class PinnedAdapter(HTTPAdapter):
    """Connects to the address the destination check approved, whatever DNS answers a moment later."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http = type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _pinned(HTTPConnection, self.address)})
        https = type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": _pinned(HTTPSConnection, self.address)})
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}


class StoreClient:
    def __init__(self, *, timeout: float, require_https: bool, allow_private: bool) -> None:
        self.timeout = timeout
        self.require_https = require_https
        self.allow_private = allow_private
        self.http = requests.Session()

    def check(self, url: str) -> Destination:
        """The rules every notification URL meets, at checkout as at delivery."""
        return check_destination(url, require_https=self.require_https, allow_private=self.allow_private)

    def post(self, url: str, payload: dict[str, Any]) -> Exchange:
        """POST the JSON payload; every outcome, good or bad, comes back as an Exchange."""
        started = time.monotonic()
        status: int | None = None
        body = b""
        timeout = budget.cap(self.timeout)  # the shopper's request waits for this call
        try:
            with admission.network_wait():  # the name lookup and the store's answer: time spent waiting
                destination = self.check(url)
                with self._session_for(destination) as http, http.post(
                    url, json=payload, timeout=(min(5.0, timeout), timeout), stream=True, allow_redirects=False,
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

    def _session_for(self, destination: Destination) -> requests.Session:
        if destination.address is None:
            return nullcontext(self.http)  # type: ignore[return-value]
        pinned = requests.Session()
        pinned.mount("http://", PinnedAdapter(destination.address))
        pinned.mount("https://", PinnedAdapter(destination.address))
        return pinned


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


