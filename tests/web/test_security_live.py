"""Issue 9 under gunicorn on loopback: what only a real server and real sockets can show."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from ..live import ConfiguredGunicorn, Gunicorn, gateway_env
from ..protocol_helpers import PRIVATE_KEY, signed_checkout

pytestmark = pytest.mark.live


def test_case_1_hostile_numbers_leave_every_worker_free(clean_database):
    """Four 26-byte bodies once took all workers for 25 s each; health checks must keep answering."""
    with Gunicorn(gateway_env(clean_database, PRIVATE_KEY), workers=2) as server:
        answers: list[dict] = []

        def attack() -> None:
            body = b'{"amounttotal": 1e1000000}'
            answers.append(requests.post(server.url + "/checkout", data=body, timeout=30).json())

        attackers = [threading.Thread(target=attack) for _ in range(4)]
        for thread in attackers:
            thread.start()
        health = requests.get(server.url + "/healthz", timeout=5)
        for thread in attackers:
            thread.join()
    assert health.status_code == 200
    assert [a["errorcode"] for a in answers] == ["100"] * 4


def test_case_7_a_chunked_body_is_read(clean_database):
    body = json.dumps(signed_checkout(randomkey="chunked-rk")).encode()

    def chunks():  # requests sends a generator with Transfer-Encoding: chunked
        for start in range(0, len(body), 97):
            yield body[start:start + 97]

    with Gunicorn(gateway_env(clean_database, PRIVATE_KEY), workers=1) as server:
        response = requests.post(server.url + "/checkout", data=chunks(), timeout=30,
                                 headers={"Content-Type": "application/json"})
        oversized = requests.post(server.url + "/checkout", data=iter([b"[" * 1024] * 1100), timeout=30)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.json()["errorcode"] == "" and response.json()["paymenttoken"]
    assert oversized.json()["errorcode"] == "100" and "too large" in oversized.json()["errormessage"]


def test_case_7_payment_tokens_never_reach_the_access_log(clean_database):
    with Gunicorn({**gateway_env(clean_database, PRIVATE_KEY)}, workers=1, access_log=True) as server:
        token = requests.post(server.url + "/checkout", json=signed_checkout(randomkey="log-rk"), timeout=30).json()[
            "paymenttoken"]
        assert requests.get(server.url + "/pay", params={"paymenttoken": token}, timeout=30).status_code == 200
        time.sleep(0.5)
    log = server.output()
    assert "/pay?paymenttoken=[redacted]" in log
    assert token not in log


def test_case_7_slow_clients_trickling_bodies_do_not_take_every_worker(clean_database):
    """Under the Procfile's settings, more slow clients than workers still leave the gateway answering."""
    env = {**gateway_env(clean_database, PRIVATE_KEY), "WEB_CONCURRENCY": "2"}
    with ConfiguredGunicorn(env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        slow = []
        for _ in range(8):  # four once took every sync worker
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"POST /checkout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n{")
            slow.append(sock)
        try:
            for byte in b'"a"':
                for sock in slow:
                    sock.sendall(bytes([byte]))
                time.sleep(0.2)
            health = requests.get(server.url + "/healthz", timeout=5)
            checkout = requests.post(server.url + "/checkout", json=signed_checkout(randomkey="busy-rk"), timeout=10)
        finally:
            for sock in slow:
                sock.close()
    assert health.status_code == 200
    assert checkout.json()["errorcode"] == "" and checkout.json()["paymenttoken"]
