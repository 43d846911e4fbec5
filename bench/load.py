"""N shoppers buy at once while the processor and the store are slow: the gateway as the Procfile runs it.

    python bench/load.py --database-url postgresql://postgres@127.0.0.1:5432/bench [--shoppers 100]

Starts the Procfile's own `web` command (gunicorn through gateway/gunicorn_conf.py) on loopback with the
sandbox processor taking --processor-latency seconds per call, and a small loopback store (its own
process) whose notification URL takes --store-latency seconds to answer. Every shopper checks out
and opens the hosted page; then all of them press Pay at the same moment (the sale), while
--arrivals more shoppers check out and open the hosted page, spread over the sale.

Prints purchases per second as a ratio to the limit (N / (processor + store latency): every
purchase waits for both once, and all may wait at the same time), p50/p99 of the pay answer,
p50/p99 of the hosted page for the shoppers arriving during the sale, errors, and whether the store
was told of every purchase exactly once. Targets on a 2-core machine at 100 shoppers: >= 0.8 of
the limit, arriving page p99 <= 250 ms, zero errors.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import Process
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import free_port, wait_until_up  # noqa: E402
from tests.protocol_helpers import PRIVATE_KEY, card_form, csrf_from, signed_checkout  # noqa: E402


def serve_slow_store(port: int, latency: float) -> None:
    """The store's notification URL: answers processed=1 after ``latency`` seconds; GET tells what it got."""
    received: Counter[int] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            time.sleep(latency)
            with lock:
                received[int(body["orderid"])] += 1
            self._send({"processed": 1, "errorcode": "", "errormessage": ""})

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                self._send({str(orderid): count for orderid, count in received.items()})

        def _send(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024  # every purchase may call at once; the default backlog of 5 drops them

    Server(("127.0.0.1", port), Handler).serve_forever()


def group_cpu_seconds(group: int) -> float:
    """CPU time used so far by every process of a process group (Linux /proc; 0 elsewhere)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def procfile_web_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit("the Procfile has no web command")


class Gateway:
    """The Procfile's web command, in its own process group so that it can be stopped whole."""

    def __init__(self, command: str, database_url: str, processor_latency: float) -> None:
        self.command = command
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="gateway-load-", suffix=".log")[1])
        self.url = f"http://127.0.0.1:{self.port}"
        # The Procfile's `gunicorn` from this interpreter's environment first.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.env = {**os.environ, "PATH": path, "PORT": str(self.port), "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                    "DATABASE_URL": database_url, "GATEWAY_ENV": "development", "GATEWAY_PRIVATE_KEY": PRIVATE_KEY,
                    "GATEWAY_PUBLIC_URL": self.url, "SANDBOX_LATENCY": str(processor_latency),
                    # As behind one reverse proxy: each shopper comes from its own address, so the
                    # per-address rate limits count as they would in production.
                    "GATEWAY_TRUSTED_PROXIES": "1"}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Gateway":
        subprocess.run([sys.executable, "-m", "gateway.cli", "db", "upgrade"], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        # A sale is a burst of card attempts at one store, which the card-testing defence reads as an attack
        # (over 60 a minute) and answers with a proof-of-work check a script cannot solve: the store raises
        # its threshold for the sale, as docs/security.md tells a merchant expecting one to.
        subprocess.run([sys.executable, "-m", "gateway.cli", "risk", "thresholds", "127.0.0.1",
                        "--attack-attempts-per-minute", "100000", "--note", "bench/load.py: a sale"],
                       cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL)
        with self.log.open("wb") as log:  # a file, never a pipe: a full pipe would stall the server's logging
            self.process = subprocess.Popen(["sh", "-c", "exec " + self.command], cwd=ROOT, env=self.env,
                                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        wait_until_up(self.url + "/healthz", self.process, timeout=60)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Shopper:
    def __init__(self, gateway: str, notify_url: str, orderid: int) -> None:
        self.gateway = gateway
        self.notify_url = notify_url
        self.orderid = orderid
        self.http = requests.Session()
        self.http.headers["X-Forwarded-For"] = f"198.18.{orderid // 256 % 256}.{orderid % 256}"  # a test-net address
        self.token = self.csrf = ""

    def arrive(self) -> float:
        """Check out and open the hosted page; returns the page's answer time in seconds."""
        body = signed_checkout(orderid=self.orderid, invoice=f"LOAD-{self.orderid}", notificationurl=self.notify_url,
                               randomkey=f"rk{self.orderid}")
        answer = self.http.post(self.gateway + "/checkout", json=body, timeout=60).json()
        if answer.get("errormessage"):
            raise RuntimeError(f"checkout refused: {answer['errormessage']}")
        self.token = answer["paymenttoken"]
        started = time.perf_counter()
        page = self.http.get(answer["redirecturl"], params={"paymenttoken": self.token}, timeout=60)
        elapsed = time.perf_counter() - started
        if page.status_code != 200:
            raise RuntimeError(f"hosted page answered HTTP {page.status_code}")
        self.csrf = csrf_from(page.text)
        return elapsed

    def pay(self) -> float:
        started = time.perf_counter()
        answer = self.http.post(self.gateway + "/pay/submit", data=card_form(self.token, self.csrf),
                                allow_redirects=False, timeout=120)
        elapsed = time.perf_counter() - started
        if answer.status_code != 303 or not re.search(r"paymentreceive\.asp", answer.headers.get("Location", "")):
            raise RuntimeError(f"pay answered HTTP {answer.status_code} {answer.headers.get('Location', '')}")
        return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    store_port = free_port()
    store = Process(target=serve_slow_store, args=(store_port, args.store_latency), daemon=True)
    store.start()
    notify_url = f"http://127.0.0.1:{store_port}/paymentreceive_json.asp?gw=1"
    base = int(time.time() * 10) % 10_000_000 * 1000
    errors: list[str] = []
    try:
        with Gateway(args.web_command, args.database_url, args.processor_latency) as gateway:
            shoppers = [Shopper(gateway.url, notify_url, base + i) for i in range(args.shoppers)]
            arrivals = [Shopper(gateway.url, notify_url, base + 500 + i) for i in range(args.arrivals)]
            earlier = [Shopper(gateway.url, notify_url, base + 800 + i) for i in range(args.warmup)]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(Shopper.arrive, shoppers + earlier))
                list(pool.map(Shopper.pay, earlier))  # a server that has served before, as in production
            pays: list[float] = []
            pages: list[float] = []
            window = args.processor_latency + args.store_latency
            barrier = threading.Barrier(args.shoppers + 1)

            def buy(shopper: Shopper) -> None:
                barrier.wait()
                try:
                    pays.append(shopper.pay())
                except (RuntimeError, requests.RequestException) as exc:
                    errors.append(f"pay {shopper.orderid}: {exc}")

            def come_in(shopper: Shopper, delay: float) -> None:
                time.sleep(delay)
                try:
                    pages.append(shopper.arrive())
                except (RuntimeError, requests.RequestException) as exc:
                    errors.append(f"arrive {shopper.orderid}: {exc}")

            buyers = [threading.Thread(target=buy, args=(shopper,)) for shopper in shoppers]
            comers = [threading.Thread(target=come_in, args=(shopper, 0.1 + window * 0.8 * i / max(1, args.arrivals)))
                      for i, shopper in enumerate(arrivals)]
            for thread in buyers:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            cpu_before = group_cpu_seconds(gateway.process.pid), time.process_time()  # type: ignore[union-attr]
            for thread in comers:
                thread.start()
            for thread in buyers:
                thread.join()
            sale_seconds = time.perf_counter() - started
            gateway_cpu = group_cpu_seconds(gateway.process.pid) - cpu_before[0]  # type: ignore[union-attr]
            client_cpu = time.process_time() - cpu_before[1]
            for thread in comers:
                thread.join()
            received = requests.get(f"http://127.0.0.1:{store_port}/", timeout=10).json()
    finally:
        store.terminate()
        store.join()
    counts = [received.get(str(shopper.orderid), 0) for shopper in shoppers]
    limit = args.shoppers / window
    return {
        "command": args.web_command,
        "shoppers": args.shoppers,
        "arrivals": args.arrivals,
        "sale_seconds": sale_seconds,
        "purchases_per_second": len(pays) / sale_seconds,
        "limit_per_second": limit,
        "ratio_to_limit": len(pays) / sale_seconds / limit,
        "pay_p50": percentile(pays, 0.5),
        "pay_p99": percentile(pays, 0.99),
        "arriving_page_p50": percentile(pages, 0.5),
        "arriving_page_p99": percentile(pages, 0.99),
        "gateway_cpu_ms_per_purchase": gateway_cpu * 1000 / args.shoppers,
        "client_cpu_seconds": client_cpu,
        "load_average_before": load_before,
        "cpus": os.cpu_count(),
        "errors": errors,
        "server_log": str(gateway.log),
        "notified_exactly_once": sum(1 for count in counts if count == 1),
        "notified_twice_or_more": sum(1 for count in counts if count > 1),
    }


def report(figures: dict[str, Any]) -> None:
    ms = 1000
    print(f"web command:            {figures['command']}")
    print(f"shoppers:               {figures['shoppers']} paying at once, {figures['arrivals']} arriving during the sale")
    print(f"purchases per second:   {figures['purchases_per_second']:.1f} of a limit of {figures['limit_per_second']:.1f}"
          f" = {figures['ratio_to_limit']:.2f} of the limit (sale took {figures['sale_seconds']:.2f} s)")
    print(f"pay answer:             p50 {figures['pay_p50'] * ms:.0f} ms, p99 {figures['pay_p99'] * ms:.0f} ms")
    print(f"arriving hosted page:   p50 {figures['arriving_page_p50'] * ms:.0f} ms,"
          f" p99 {figures['arriving_page_p99'] * ms:.0f} ms")
    print(f"gateway CPU:            {figures['gateway_cpu_ms_per_purchase']:.1f} ms per purchase during the sale"
          f" (the load generator used {figures['client_cpu_seconds']:.2f} s)")
    print(f"machine:                {figures['cpus']} CPUs, load average {figures['load_average_before']:.2f} before the run")
    print(f"errors:                 {len(figures['errors'])}")
    for error in figures["errors"][:10]:
        print(f"  {error}")
    if figures["errors"]:
        print(f"server log:             {figures['server_log']}")
    print(f"notified exactly once:  {figures['notified_exactly_once']} of {figures['shoppers']}"
          f" ({figures['notified_twice_or_more']} more than once)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL, as production runs (its schema is migrated)")
    parser.add_argument("--shoppers", type=int, default=100)
    parser.add_argument("--arrivals", type=int, default=20, help="shoppers opening the hosted page during the sale")
    parser.add_argument("--warmup", type=int, default=16, help="purchases made before the sale (0: a cold server)")
    parser.add_argument("--processor-latency", type=float, default=1.0)
    parser.add_argument("--store-latency", type=float, default=1.0)
    parser.add_argument("--web-command", help="instead of the Procfile's web command (to compare another setup)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    args.web_command = args.web_command or procfile_web_command()
    figures = run(args)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    ok = not figures["errors"] and figures["notified_exactly_once"] == args.shoppers
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
