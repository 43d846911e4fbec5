"""Throughput of the gateway's exchanges, printed as ratios against a baseline measured in the same run.

    python bench/bench.py [--database-url URL] [--seconds 3]

Baseline: `GET /readyz` (one trivial database round trip through the same app and engine).
Each exchange's figure is requests per second and how many health checks one of them costs; the
hostile inputs (which once took a worker 25 s each) show what refusing them costs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import responses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import create_app  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from tests.protocol_helpers import NOTIFY_URL, PRIVATE_KEY, card_form, csrf_from, signed_checkout, signed_refund  # noqa: E402


def rate(action: Callable[[int], None], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        action(count)
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    upgrade(url)
    logging.disable(logging.INFO)
    unlimited = "1000000 per minute"  # one client address makes every request here: measure work, not limits
    app = create_app(load_settings({}, database_url=url, private_key=PRIVATE_KEY, limit_card_per_address=unlimited,
                                   limit_card_per_store=unlimited, limit_page_per_address=unlimited))
    client = app.test_client()
    base = int(time.time())

    def health(i: int) -> None:
        assert client.get("/readyz").status_code == 200

    def checkout(i: int) -> None:
        body = signed_checkout(orderid=base * 1000 + i, randomkey=f"c{i}")
        assert client.post("/checkout", data=json.dumps(body), content_type="application/json").get_json()["paymenttoken"]

    paid: list[tuple[int, str]] = []

    def purchase(i: int) -> None:
        orderid = base * 1000 + 500_000 + i
        answer = client.post("/checkout", data=json.dumps(signed_checkout(orderid=orderid, randomkey=f"p{i}")),
                             content_type="application/json").get_json()
        page = client.get("/pay", query_string={"paymenttoken": answer["paymenttoken"]}).get_data(as_text=True)
        done = client.post("/pay/submit", data=card_form(answer["paymenttoken"], csrf_from(page)))
        assert done.status_code == 303
        paid.append((orderid, ""))

    shown = client.post("/checkout", data=json.dumps(signed_checkout(orderid=base * 1000 + 900_000, randomkey="s")),
                        content_type="application/json").get_json()["paymenttoken"]

    def hosted_page(i: int) -> None:
        assert client.get("/pay", query_string={"paymenttoken": shown}, headers={"Accept-Encoding": "gzip"}).status_code == 200

    def refund(i: int) -> None:
        orderid, _ = paid[i % len(paid)]
        body = signed_refund(orderid=orderid, transactionid="unknown", randomkey=f"r{i}")
        client.post("/post-order", data=json.dumps(body), content_type="application/json")

    hostile = {
        "hostile: 1e1000000 amount (26 bytes)": ("/checkout", b'{"amounttotal": 1e1000000}'),
        "hostile: 600,000-digit orderid": ("/checkout", b'{"orderid": ' + b"9" * 600_000 + b"}"),
        "hostile: 100,000-deep array": ("/post-order", b"[" * 100_000 + b"]" * 100_000),
    }

    def refused(path: str, body: bytes) -> Callable[[int], None]:
        def run(i: int) -> None:
            assert client.post(path, data=body, content_type="application/json").get_json()["errorcode"] == "100"
        return run

    with responses.RequestsMock() as store:
        store.add(responses.POST, NOTIFY_URL, json={"processed": 1, "errorcode": "", "errormessage": ""})
        baseline = rate(health, args.seconds)
        figures = {
            "checkout (exchange 1)": rate(checkout, args.seconds),
            "hosted page (GET /pay, gzip)": rate(hosted_page, args.seconds),
            "purchase (exchanges 1-3, 3 requests)": rate(purchase, args.seconds),
            "refused refund (exchange 4)": rate(refund, args.seconds),
            **{name: rate(refused(*request), args.seconds) for name, request in hostile.items()},
        }
        tracemalloc.start()  # measured apart: tracing slows everything it watches
        for i in range(50):
            purchase(100_000 + i)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    engine = url.split(":", 1)[0]
    print(f"database: {engine}; baseline GET /readyz: {baseline:.0f} req/s")
    for name, value in figures.items():
        print(f"{name:40s} {value:8.1f} /s   {baseline / value:6.1f}x the cost of a health check")
    print(f"peak traced memory over 50 purchases: {peak / 1024 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
