"""The one outbound HTTP call to a store: bounded in time and size, and refused for unsafe targets.

One deadline covers the whole call -- the name lookup, each connect, the request and every read of
the answer -- so a store that trickles its answer a byte at a time is cut off when the deadline
passes, not when a single read stalls.
"""
from __future__ import annotations

import http.client
import io
import ipaddress
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
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
from .exchange import Exchange, StoreAnswer, UnsafeDestination

MAX_ANSWER_BYTES = 64 * 1024
SNIPPET_CHARS = 500
ERROR_CHARS = 300
CONNECT_TIMEOUT = 5.0  # for one of the store's addresses, so a dead first one leaves time for the next
# Control characters other than tab and line breaks are kept as \xNN escapes (PostgreSQL text
# refuses NUL, and terminals and log viewers act on the others).
_ESCAPED = {code: f"\\x{code:02x}" for code in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)}
COMPLETE_ORDER_RESPONSE = CompleteOrderResponseSchema()


class DeliveryFailure(Exception):
    """The store was reached but its answer cannot be used."""


NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
RESOLVE_TIMEOUT = 3.0
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


@dataclass(frozen=True)
class Destination:
    """A checked notification URL and every address it was checked at, in the resolver's order
    (none: not checked, resolved when connecting)."""

    url: str
    addresses: tuple[str, ...]


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
    """The host's addresses, within a deadline (getaddrinfo itself has none); an address is its own."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass  # a name, to be looked up
    future = _resolver.submit(socket.getaddrinfo, host, port, proto=socket.IPPROTO_TCP)
    try:
        infos = future.result(timeout=timeout)
    except FutureTimeout as exc:
        raise UnsafeDestination(f"resolving {host!r} took longer than {timeout:g} s") from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeDestination(f"cannot resolve {host!r}") from exc
    return [str(info[4][0]) for info in infos]


def check_destination(url: str, *, require_https: bool, allow_private: bool,
                      resolve_timeout: float = RESOLVE_TIMEOUT) -> Destination:
    """Apply the delivery rules to a notification URL; return the addresses to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination(f"notification URL scheme {parts.scheme!r} is not http(s)")
    if require_https and parts.scheme != "https":
        raise UnsafeDestination("notification URL must use https")
    host = parts.hostname or ""
    if not host:
        raise UnsafeDestination("notification URL has no host")
    if allow_private:
        return Destination(url, ())
    addresses = resolve(host, parts.port or (443 if parts.scheme == "https" else 80), budget.cap(resolve_timeout))
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public(address):
            raise UnsafeDestination(f"{host!r} resolves to a non-public address {address}")
    return Destination(url, tuple(addresses))


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


class DeadlineSocket:
    """A connected socket (plain or TLS) whose every send and read waits only until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def __getattr__(self, name: str) -> Any:  # fileno, settimeout, shutdown, close, getpeercert ...
        return getattr(self._sock, name)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self.arm()
        self._sock.sendall(data, flags)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        """http.client reads the status line, the headers and the body through this file."""
        return io.BufferedReader(_DeadlineReader(self._sock.makefile("rb", buffering=0), self))

    def arm(self) -> None:
        """Give the next socket operation what is left of the deadline, or fail it if nothing is."""
        left = _left(self._deadline)
        if left <= 0:
            raise socket.timeout("the delivery deadline has passed")
        self._sock.settimeout(left)


class _DeadlineReader(io.RawIOBase):
    """The socket's file, armed before every read: a trickled answer runs into the deadline."""

    def __init__(self, raw: Any, sock: DeadlineSocket) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.arm()
        result: int | None = self._raw.readinto(buffer)
        return result

    def close(self) -> None:
        self._raw.close()
        super().close()


def _connect_any(connection: HTTPConnection, destination: Destination, deadline: float) -> socket.socket:
    """Try the destination's addresses in order, each within what is left of the deadline."""
    addresses = destination.addresses or tuple(resolve(connection.host, connection.port, max(0.0, _left(deadline))))
    failures: list[str] = []
    for address in addresses:
        left = _left(deadline)
        if left <= 0:
            raise ConnectTimeoutError(connection, f"connecting to {connection.host} ran out of time ({failures})")
        try:
            sock = create_connection((address, connection.port), min(CONNECT_TIMEOUT, left),
                                     source_address=connection.source_address,
                                     socket_options=connection.socket_options)
        except OSError as exc:
            failures.append(f"{address}: {exc}")
            continue
        sock.settimeout(max(0.001, _left(deadline)))  # the TLS handshake, as a whole
        return sock
    raise NewConnectionError(connection, f"failed to connect to {connection.host} at any of its addresses ({failures})")


def _bounded(connection_class: type, destination: Destination, deadline: float) -> type:
    class Bounded(connection_class):  # type: ignore[misc]
        """Opens its socket to the checked addresses; ``self.host`` stays the name, for Host, SNI and
        the certificate."""

        sock: Any

        def _new_conn(self):  # type: ignore[no-untyped-def]
            return _connect_any(self, destination, deadline)

        def connect(self) -> None:
            super().connect()
            self.sock = DeadlineSocket(self.sock, deadline)

    return Bounded


class BoundedAdapter(HTTPAdapter):
    """Connects only to the addresses the destination check approved, whatever DNS answers a moment
    later, and ends the whole exchange by one deadline."""

    def __init__(self, destination: Destination, deadline: float) -> None:
        self.destination = destination
        self.deadline = deadline
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_pool = type("BoundedHTTPPool", (HTTPConnectionPool,),
                         {"ConnectionCls": _bounded(HTTPConnection, self.destination, self.deadline)})
        https_pool = type("BoundedHTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": _bounded(HTTPSConnection, self.destination, self.deadline)})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}


# What the transport may raise on a store's malformed answer that requests does not wrap.
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


class StoreClient:
    """Posts to stores; ``timeout`` is the whole of one call, from the name lookup to the answer's last byte."""

    def __init__(self, *, timeout: float, require_https: bool, allow_private: bool) -> None:
        self.timeout = timeout
        self.require_https = require_https
        self.allow_private = allow_private

    def check(self, url: str, resolve_timeout: float = RESOLVE_TIMEOUT) -> Destination:
        """The rules every notification URL meets, at checkout as at delivery."""
        return check_destination(url, require_https=self.require_https, allow_private=self.allow_private,
                                 resolve_timeout=resolve_timeout)

    def post(self, url: str, payload: dict[str, Any]) -> Exchange:
        """POST the JSON payload; every outcome, good or bad, comes back as an Exchange."""
        started = time.monotonic()
        deadline = started + budget.cap(self.timeout)  # the shopper's request waits for this call
        status: int | None = None
        body = b""
        try:
            with admission.network_wait():  # the name lookup and the store's answer: time spent waiting
                destination = self.check(url, min(RESOLVE_TIMEOUT, _left(deadline)))
                adapter = BoundedAdapter(destination, deadline)
                try:
                    with adapter.send(_request(url, payload), stream=True, timeout=max(0.001, _left(deadline)),
                                      verify=_trusted_certificates()) as response:
                        status = response.status_code
                        body = _read_capped(response)
                finally:
                    adapter.close()
            if not 200 <= status < 300:
                raise DeliveryFailure(f"store answered HTTP {status}")
            answer = parse_answer(body)
            return Exchange(_elapsed(started), status, _snippet(body), answer, "")
        except (*TRANSPORT_ERRORS, UnsafeDestination, DeliveryFailure) as exc:
            return Exchange(_elapsed(started), status, _snippet(body), None, _describe(exc, _left(deadline) <= 0))


def _request(url: str, payload: dict[str, Any]) -> requests.PreparedRequest:
    """The POST, with the headers a requests Session would send, sent straight through an adapter of its
    own (a connection is never reused for an address checked earlier). No Session: building one per
    call (two adapters we never use, a cookie jar) and merging its settings cost a third of the call's
    CPU. Nor its environment: a proxy named there would connect to the store on our behalf, past the
    checked addresses and the deadline's socket, so none is used (and .netrc is not read)."""
    headers = requests.utils.default_headers()
    headers.update(outgoing_headers())
    return requests.Request("POST", url, json=payload, headers=headers).prepare()


def _trusted_certificates() -> str | bool:
    """A CA bundle named in the environment, as requests would take it; else the default one."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


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


def _describe(exc: Exception, out_of_time: bool) -> str:
    if isinstance(exc, requests.Timeout) or (out_of_time and isinstance(exc, TRANSPORT_ERRORS)):
        return "store did not answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect to the store"
    return _printable(str(exc), ERROR_CHARS)


def _snippet(body: bytes) -> str:
    return _printable(body[:SNIPPET_CHARS].decode("utf-8", errors="backslashreplace"), SNIPPET_CHARS)


def _printable(text: str, limit: int) -> str:
    """What a store sent, safe to store, log and show: bytes that are not UTF-8 and control
    characters as \\xNN escapes, capped at ``limit`` characters."""
    return text.translate(_ESCAPED)[:limit]


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


