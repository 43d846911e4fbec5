"""The one call to a store against real loopback sockets: one deadline for the whole exchange,
every checked address tried, and whatever the store sends kept only in a safe form."""
from __future__ import annotations

import ssl
import time

import pytest

from gateway.notifications import client as store_client
from gateway.notifications.client import StoreClient

from ..live import free_port
from ..web.test_security import _self_signed
from .stores import RawStore, http_answer

pytestmark = pytest.mark.live
SHORT_ANSWER = http_answer(b'{"processed":1}')


def test_case_6_a_store_trickling_its_answer_is_cut_off_at_one_deadline_for_the_whole_call():
    """One byte every 0.5 s never trips a per-read timeout of 1.5 s; only a whole-call deadline stops it."""
    client = StoreClient(timeout=1.5, require_https=False, allow_private=True)
    with RawStore(SHORT_ANSWER, trickle=0.5) as store:
        started = time.monotonic()
        exchange = client.post(store.url, {"orderid": 1})
        took = time.monotonic() - started
    assert exchange.answer is None and exchange.error == "store did not answer in time"
    assert 1.4 < took < 2.2
    assert store.received == [{"orderid": 1}]


def test_case_6_and_8_over_tls_the_deadline_holds_and_the_second_address_gets_the_store_name(monkeypatch, tmp_path):
    """https to a checked address: the first one is dead, the second one's certificate is checked
    against the store's name (SNI too), and the trickled answer still ends at the deadline."""
    cert, key = _self_signed(tmp_path, "store.invalid")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with RawStore(SHORT_ANSWER, trickle=0.5, tls=context) as store:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["127.0.0.2", "127.0.0.1"])
        monkeypatch.setattr(store_client, "is_public", lambda address: True)
        client = StoreClient(timeout=1.5, require_https=True, allow_private=False)
        started = time.monotonic()
        exchange = client.post(f"https://store.invalid:{store.port}/notify", {"orderid": 1})
        took = time.monotonic() - started
    assert exchange.answer is None and exchange.error == "store did not answer in time"
    assert 1.4 < took < 2.2
    assert store.received == [{"orderid": 1}]


def test_case_8_delivery_tries_every_checked_address_until_one_answers(monkeypatch):
    """The store's first address is dead (nothing listens there); its second one answers."""
    with RawStore(SHORT_ANSWER) as store:
        monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["127.0.0.2", "127.0.0.1"])
        monkeypatch.setattr(store_client, "is_public", lambda address: True)
        client = StoreClient(timeout=1.5, require_https=False, allow_private=False)
        # store.invalid never resolves: only the checked addresses can have been used.
        exchange = client.post(f"http://store.invalid:{store.port}/notify", {"orderid": 1})
    assert exchange.error == "" and exchange.answer is not None and exchange.answer.processed
    assert store.received == [{"orderid": 1}]


def test_case_8_every_address_is_tried_in_development_too(monkeypatch):
    with RawStore(SHORT_ANSWER) as store:
        monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["127.0.0.2", "127.0.0.1"])
        client = StoreClient(timeout=1.5, require_https=False, allow_private=True)
        exchange = client.post(f"http://store.invalid:{store.port}/notify", {"orderid": 1})
    assert exchange.answer is not None and exchange.answer.processed


def test_case_8_no_address_answering_is_a_failed_attempt(monkeypatch):
    with RawStore(SHORT_ANSWER) as store:
        monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["127.0.0.2", "127.0.0.3"])
        monkeypatch.setattr(store_client, "is_public", lambda address: True)
        client = StoreClient(timeout=1.5, require_https=False, allow_private=False)
        exchange = client.post(f"http://store.invalid:{store.port}/notify", {"orderid": 1})
    assert exchange.answer is None and exchange.error == "could not connect to the store"
    assert store.received == []


def test_case_8_one_private_address_among_the_store_addresses_refuses_the_delivery(monkeypatch):
    with RawStore(SHORT_ANSWER) as store:
        monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["93.184.215.14", "10.0.0.7"])
        client = StoreClient(timeout=1.5, require_https=False, allow_private=False)
        exchange = client.post(f"http://store.invalid:{store.port}/notify", {"orderid": 1})
    assert exchange.answer is None and "non-public address 10.0.0.7" in exchange.error
    assert store.received == []


def test_a_proxy_named_in_the_environment_never_carries_a_store_call(monkeypatch):
    """A proxy would connect to the store on our behalf, past the checked addresses and the deadline."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with RawStore(SHORT_ANSWER) as store:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
        client = StoreClient(timeout=1.5, require_https=False, allow_private=True)
        exchange = client.post(store.url, {"orderid": 1})
    assert exchange.error == "" and exchange.answer is not None and exchange.answer.processed
    assert store.received == [{"orderid": 1}]


@pytest.mark.parametrize("answer, kept", [
    (http_answer(b'{"processed":1}\x00\x00'), '{"processed":1}\\x00\\x00'),
    (http_answer(b"\xff\xfe\x00garbage\x1b[2J"), "\\xff\\xfe\\x00garbage\\x1b[2J"),
    (http_answer(b"\xff" * 2000), "\\xff" * 125),
], ids=["nul-after-the-json", "not-utf8-with-control-characters", "long-garbage"])
def test_case_7_nul_and_garbage_in_the_answer_are_kept_escaped_and_capped(answer, kept):
    client = StoreClient(timeout=1.5, require_https=False, allow_private=True)
    with RawStore(answer) as store:
        exchange = client.post(store.url, {"orderid": 1})
    assert exchange.answer is None and exchange.http_status == 200
    assert exchange.snippet == kept
    assert "store answer is not a CompleteOrderResponse" in exchange.error

