"""Stores on loopback that answer notifications with exact bytes, at their own pace: a real socket,
so timeouts, deadlines and parsing meet what a slow or hostile store would send."""
from __future__ import annotations

import json
import socket
import ssl
import threading
from typing import Any

OK_ANSWER = b'{"processed": 1, "errorcode": "", "errormessage": ""}'


def http_answer(body: bytes, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class RawStore:
    """Answers every POST with ``answer``, one byte every ``trickle`` seconds when that is set, and
    keeps the notifications it received; over TLS when given a server context."""

    def __init__(self, answer: bytes = http_answer(OK_ANSWER), *, trickle: float = 0.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.trickle = trickle
        self.received: list[dict[str, Any]] = []
        listener = socket.create_server(("127.0.0.1", 0))
        self.listener = tls.wrap_socket(listener, server_side=True) if tls else listener
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/paymentreceive_json.asp?gw=1"
        self.stopped = threading.Event()

    def __enter__(self) -> "RawStore":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            self.received.append(json.loads(_read_request(connection)))
            try:
                self._send(connection)
            except OSError:
                pass  # the gateway gave up and hung up: what a real store would see

    def _send(self, connection: socket.socket) -> None:
        if not self.trickle:
            connection.sendall(self.answer)
            return
        for byte in self.answer:
            if self.stopped.wait(self.trickle):
                return
            connection.sendall(bytes([byte]))


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += connection.recv(65536)
    return body
