"""The emulator's local certificate authority: https on loopback that a client trusts through REQUESTS_CA_BUNDLE."""
from __future__ import annotations

import ssl
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from store_emulator.tls import main, make_local_tls

pytestmark = pytest.mark.live


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def https_server(tmp_path):  # type: ignore[no-untyped-def]
    tls = make_local_tls(tmp_path / "tls")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.certificate, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tls, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_local_certificate_is_trusted_through_its_authority_and_by_nothing_else(https_server):
    tls, port = https_server
    for host in ("127.0.0.1", "localhost"):
        assert requests.get(f"https://{host}:{port}/", verify=str(tls.ca), timeout=5).text == "hello"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{port}/", timeout=5)  # the system's authorities do not know it


def test_local_certificate_key_is_private_and_the_authoritys_key_is_kept_nowhere(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ca.pem", "localhost-key.pem", "localhost.pem"]
    assert stat.S_IMODE((tmp_path / "localhost-key.pem").stat().st_mode) == 0o600
    assert f"REQUESTS_CA_BUNDLE={tmp_path / 'ca.pem'}" in capsys.readouterr().out
    assert b"PRIVATE KEY" not in (tmp_path / "ca.pem").read_bytes()
