"""Shoppers must not feel a console sign-in flood (issue 20, item 2): purchase p50 within 3x of unloaded.

    python bench/signin_flood.py --database-url postgresql://postgres@127.0.0.1:5432/bench [--flooders 48]

Starts the Procfile's web command (gunicorn, real argon2 cost) as bench/load.py does, with a
loopback store, and one console account. Shoppers buy one after another on a few threads (check
out, open the hosted page, pay), first alone for --seconds, then again for --seconds while
--flooders threads (in processes of their own) post wrong passwords to /console/login as fast as the gateway answers, each
from addresses of its own (a botnet: the per-address limit alone does not stop it) and against the
real account name or made-up ones. Both phases run in the same run on the same server.

Prints the purchase p50 and p99 of each phase, their ratio (the target: p50 under flood <= 3x
unloaded), what the flood was answered (401 wrong password or locked, 429 rate limited, 503
password checks busy; never 500) and shopper errors (none expected).
"""
from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from multiprocessing import Process, Queue
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load import Gateway, Shopper, percentile, procfile_web_command, serve_slow_store  # noqa: E402

from tests.live import free_port  # noqa: E402

ACCOUNT = f"flood-{int(time.time())}"  # a fresh account on a database a previous run used
PASSWORD = "correct horse battery staple"
FLOOD_PROCESSES = 4


def create_account(gateway: Gateway) -> None:
    subprocess.run([sys.executable, "-m", "gateway.cli", "accounts", "create", ACCOUNT, "--role", "operator",
                    "--password", PASSWORD], cwd=Path(__file__).resolve().parent.parent, env=gateway.env, check=True,
                   stdout=subprocess.DEVNULL)


def flood(url: str, stop: threading.Event, answers: Counter[int], lock: threading.Lock, index: int) -> None:
    """Wrong passwords as fast as they are answered. The sign-in form's nonce cookie is Secure, so it is
    sent by hand over plain HTTP."""
    rng = random.Random(index)
    http = requests.Session()
    while not stop.is_set():
        headers = {"X-Forwarded-For": f"10.{index}.{rng.randrange(256)}.{rng.randrange(1, 255)}"}
        try:
            form = http.get(url + "/console/login", headers=headers, timeout=30)
            nonce = form.cookies.get("gateway_console_login") or ""
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text)
            username = ACCOUNT if rng.random() < 0.5 else f"guess{rng.randrange(10**6)}"
            answer = http.post(url + "/console/login", data={"csrf": csrf.group(1) if csrf else "", "username": username,
                                                           "password": f"wrong {rng.random()}", "code": ""},
                               headers={**headers, "Cookie": f"gateway_console_login={nonce}"},
                               allow_redirects=False, timeout=30)
            status = answer.status_code
        except requests.RequestException:
            status = 0
        with lock:
            answers[status] += 1


def flood_process(url: str, seconds: float, indexes: list[int], results: "Queue[dict[int, int]]") -> None:
    """A process of flooder threads (the attack runs outside the shoppers' own client process, whose
    threads it would otherwise starve of Python's lock); puts its answers' statuses on ``results``."""
    stop, lock, answers = threading.Event(), threading.Lock(), Counter[int]()
    flooders = [threading.Thread(target=flood, args=(url, stop, answers, lock, index)) for index in indexes]
    for flooder in flooders:
        flooder.start()
    time.sleep(seconds)
    stop.set()
    for flooder in flooders:
        flooder.join()
    results.put(dict(answers))


def shop(gateway: str, notify_url: str, first_order: int, seconds: float, threads: int) -> tuple[list[float], list[str]]:
    """Purchases (check out, hosted page, pay) one after another on ``threads`` threads; their times and errors."""
    times: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def shopper(offset: int) -> None:
        order = first_order + offset * 10_000
        while time.monotonic() < deadline:
            order += 1
            started = time.perf_counter()
            try:
                buyer = Shopper(gateway, notify_url, order)
                buyer.arrive()
                buyer.pay()
                times.append(time.perf_counter() - started)
            except (RuntimeError, requests.RequestException) as exc:
                errors.append(f"order {order}: {exc}")

    workers = [threading.Thread(target=shopper, args=(offset,)) for offset in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return times, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL, as production runs (its schema is migrated)")
    parser.add_argument("--flooders", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--shoppers", type=int, default=4, help="threads buying one purchase after another")
    parser.add_argument("--processor-latency", type=float, default=0.05)
    parser.add_argument("--store-latency", type=float, default=0.05)
    args = parser.parse_args()

    store_port = free_port()
    store = Process(target=serve_slow_store, args=(store_port, args.store_latency), daemon=True)
    store.start()
    notify_url = f"http://127.0.0.1:{store_port}/paymentreceive_json.asp?gw=1"
    base = int(time.time()) % 100_000 * 100_000_000
    answers: Counter[int] = Counter()
    try:
        gateway = Gateway(procfile_web_command(), args.database_url, args.processor_latency)
        gateway.env["GATEWAY_LIMIT_CARD_PER_STORE"] = "100000 per minute"  # every purchase is for one store here
        with gateway:
            create_account(gateway)
            shop(gateway.url, notify_url, base, 3, args.shoppers)  # warm every worker up
            alone, alone_errors = shop(gateway.url, notify_url, base + 1_000_000, args.seconds, args.shoppers)
            results: Queue[dict[int, int]] = Queue()
            attackers = [Process(target=flood_process, args=(gateway.url, args.seconds + 2,
                                                             list(range(args.flooders))[n::FLOOD_PROCESSES], results))
                         for n in range(FLOOD_PROCESSES)]
            for attacker in attackers:
                attacker.start()
            time.sleep(2)  # the flood is under way before the shoppers are timed
            flooded, flooded_errors = shop(gateway.url, notify_url, base + 2_000_000, args.seconds, args.shoppers)
            for _ in attackers:
                answers.update(results.get(timeout=120))
            for attacker in attackers:
                attacker.join()
    finally:
        store.terminate()
        store.join()

    ms = 1000
    ratio = percentile(flooded, 0.5) / percentile(alone, 0.5)
    print(f"purchases alone:        {len(alone)}, p50 {percentile(alone, 0.5) * ms:.0f} ms, p99 {percentile(alone, 0.99) * ms:.0f} ms")
    print(f"purchases under flood:  {len(flooded)}, p50 {percentile(flooded, 0.5) * ms:.0f} ms,"
          f" p99 {percentile(flooded, 0.99) * ms:.0f} ms ({args.flooders} flooders)")
    print(f"p50 ratio:              {ratio:.2f} (target <= 3)")
    print(f"flood answered:         {dict(sorted(answers.items()))} (0: connection error)")
    print(f"shopper errors:         {len(alone_errors)} alone, {len(flooded_errors)} under flood")
    for error in (alone_errors + flooded_errors)[:10]:
        print(f"  {error}")
    ok = ratio <= 3 and not alone_errors and not flooded_errors and not answers.get(500) and not answers.get(0)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
