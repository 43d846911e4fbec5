"""Throughput of the gateway's exchanges, printed as ratios against ceilings measured in the same run.

In process (the default), through Flask's test client:

    python bench/bench.py [--database-url URL] [--seconds 3]

Baseline: `GET /readyz` (one trivial database round trip through the same app and engine).
Each exchange's figure is requests per second and how many health checks one of them costs, then
the CPU this process spent on one (the gateway's work without the database server's) and as many
health checks' CPU; the hostile inputs (which once took a worker 25 s each) show what refusing them costs.

Real servers under wrk (`apt-get install -y wrk`), 32 connections, each request a fresh signed
CheckoutRequest or a page view from its own client address (X-Forwarded-For, GATEWAY_TRUSTED_PROXIES=1):

    python bench/bench.py --servers [--postgres-url postgresql://...] [--seconds 5] [--code DIR]

Set-ups: `gunicorn -w 2` on SQLite (the embedded default), and the Procfile's web command
(`gunicorn --config python:gateway.gunicorn_conf 'gateway:create_app()'`, through `wsgi:app`) on PostgreSQL when --postgres-url is given. In each,
the gateway's POST /checkout, GET /pay?paymenttoken= (gzip) and /healthz, then the ceilings: a bare
Flask handler doing the same md5 work, without and with one durable insert (same database kind, the
gateway's engine settings), on the same gunicorn command. Printed: req/s, p99, requests that did not
get a 200 with an empty errorcode, and the issue's ratios (checkout / bare plus one insert, page /
/healthz). --code runs the gateway of another checkout (e.g. a worktree of an older commit), so
before and after can be measured in alternating runs; the ceilings always run this file's code.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import responses
from flask import Flask, request
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import create_app  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.db import make_engine  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from gateway.payments.risk import set_thresholds  # noqa: E402
from gateway.payments.stores import store_key  # noqa: E402
from gateway.protocol.signing import verify  # noqa: E402
from tests.protocol_helpers import NOTIFY_URL, PRIVATE_KEY, card_form, csrf_from, signed_checkout, signed_refund  # noqa: E402


@dataclass(frozen=True)
class Rate:
    per_second: float
    cpu_ms: float  # this process's CPU per call: the gateway's own work, not the database server's


def timed(actions: list[Callable[[], None]]) -> Rate:
    """Each action once, in turn (work prepared beforehand, outside the measurement)."""
    started, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        action()
    return Rate(len(actions) / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / len(actions))


def rate(action: Callable[[int], None], seconds: float) -> Rate:
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        action(count)
        count += 1
    return Rate(count / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / count)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--seconds", type=float, default=None, help="per measurement (3 in process, 5 with --servers)")
    parser.add_argument("--servers", action="store_true", help="real gunicorn servers under wrk, 32 connections")
    parser.add_argument("--postgres-url", default="", help="with --servers: also the Procfile's web command on PostgreSQL")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--code", type=Path, default=ROOT, help="with --servers: the checkout whose gateway runs")
    args = parser.parse_args()
    if args.servers:
        servers(args.code.resolve(), args.postgres_url, args.seconds or 5.0, args.connections)
    else:
        in_process(args.database_url, args.seconds or 3.0)


def in_process(database_url: str, seconds: float) -> None:
    url = database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    upgrade(url)
    logging.disable(logging.INFO)
    unlimited = "1000000 per minute"  # one client address makes every request here: measure work, not limits
    app = create_app(load_settings({}, database_url=url, private_key=PRIVATE_KEY, limit_card_per_address=unlimited,
                                   limit_card_per_store=unlimited, limit_page_per_address=unlimited))
    client = app.test_client()
    base = int(time.time())
    # Hundreds of card attempts a minute at one store are an attack to the card-testing defence (see
    # bench/load.py): the purchases here would be challenged, not charged.
    set_thresholds(app.extensions["gateway"], store_key(NOTIFY_URL), "bench/bench.py", attack_attempts_per_minute=10**9)

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

    def opened(i: int) -> Callable[[], None]:
        """A session checked out and shown; the returned action submits its card (exchange 2) and
        notifies the store (exchange 3)."""
        token = client.post("/checkout", data=json.dumps(signed_checkout(orderid=base * 1000 + 700_000 + i, randomkey=f"o{i}")),
                            content_type="application/json").get_json()["paymenttoken"]
        form = card_form(token, csrf_from(client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True)))
        return lambda: None if client.post("/pay/submit", data=form).status_code == 303 else sys.exit("a submission failed")

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
        baseline = rate(health, seconds)
        figures = {
            "checkout (exchange 1)": rate(checkout, seconds),
            "hosted page (GET /pay, gzip)": rate(hosted_page, seconds),
            "purchase (exchanges 1-3, 3 requests)": rate(purchase, seconds),
            "pay submission (exchanges 2-3)": timed([opened(i) for i in range(int(seconds * 60))]),
            "refused refund (exchange 4)": rate(refund, seconds),
            **{name: rate(refused(*request), seconds) for name, request in hostile.items()},
        }
        tracemalloc.start()  # measured apart: tracing slows everything it watches
        for i in range(50):
            purchase(100_000 + i)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    engine = url.split(":", 1)[0]
    print(f"database: {engine}; baseline GET /readyz: {baseline.per_second:.0f} req/s, {baseline.cpu_ms:.2f} ms of CPU")
    for name, value in figures.items():
        print(f"{name:40s} {value.per_second:8.1f} /s   {baseline.per_second / value.per_second:6.1f}x the cost of a health check;"
              f" CPU {value.cpu_ms:6.2f} ms, {value.cpu_ms / baseline.cpu_ms:5.1f}x a health check's")
    print(f"peak traced memory over 50 purchases: {peak / 1024 / 1024:.1f} MiB")


BARE_TABLE = "bench_bare_rows"
WARM_UP = 6000  # fresh CheckoutRequests for the warm-up second
# One line per request, method TAB path TAB gzip flag TAB body; each thread takes every stride-th
# line, from its own client address. A good answer is a 200 containing `expect` (any 200 when empty).
WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  lines = {}
  for line in io.lines(args[1]) do
    local method, path, gzip, body = line:match("^(%u+)\t([^\t]*)\t(%d)\t(.*)$")
    lines[#lines + 1] = {method, path, gzip == "1", body}
  end
  stride, expect, n, bad, sent = tonumber(args[2]), args[3] or "", id, 0, 0
end
function request()
  local line = lines[(n % #lines) + 1]
  local headers = {["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256,
                                                        math.floor(n / 256) % 256, n % 256)}
  if line[3] then headers["Accept-Encoding"] = "gzip" end
  if line[1] == "POST" then headers["Content-Type"] = "application/json" end
  n, sent = n + stride, sent + 1
  return wrk.format(line[1], line[2], headers, line[4] ~= "" and line[4] or nil)
end
function response(status, headers, body)
  if status ~= 200 or (expect ~= "" and not string.find(body, expect, 1, true)) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local bad, sent = 0, 0
  for _, thread in ipairs(threads) do bad, sent = bad + thread:get("bad"), sent + thread:get("sent") end
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "seconds": %f, "p99_ms": %f, "bad": %d, "socket_errors": %d, "sent": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(99) / 1000, bad,
    e.connect + e.read + e.write + e.timeout, sent))
end
"""
WRK_THREADS = 2
WRK_TIMEOUT = "10s"  # a slow answer counts in the latency, not as an error (wrk's default is 2 s)
ACCEPTED = '"errorcode":""'


def bare_app() -> Flask:
    """The ceiling (gunicorn 'bench:bare_app()'): read the body, check its md5 signature as the gateway
    does, and, when BENCH_BARE_DATABASE_URL is set, insert one row in one durable transaction."""
    url = os.environ.get("BENCH_BARE_DATABASE_URL", "")
    engine = make_engine(url, int(os.environ.get("GATEWAY_DB_POOL_SIZE") or 10)) if url else None
    insert = text(f"INSERT INTO {BARE_TABLE} (randomkey, body) VALUES (:randomkey, :body)")
    app = Flask("bare")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/checkout")
    def checkout() -> dict[str, str]:
        raw = request.get_data()
        body = json.loads(raw)
        if not verify(body["signature"], body["randomkey"], PRIVATE_KEY, body["orderid"], body["invoice"], body["amounttotal"]):
            return {"errorcode": "100", "errormessage": "signature"}
        if engine is not None:
            with engine.begin() as connection:
                connection.execute(insert, {"randomkey": body["randomkey"], "body": raw.decode()})
        return {"errorcode": "", "errormessage": "", "paymenttoken": secrets.token_urlsafe(32)}

    return app


@dataclass(frozen=True)
class Figure:
    rate: float
    p99_ms: float
    bad: int  # answers that were not a 200 (with an empty errorcode, for checkouts)
    socket_errors: int  # connections that failed, and requests unanswered within WRK_TIMEOUT
    repeated: bool  # more requests than prepared bodies: some were exact retries


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(code: Path, app: str, env: dict[str, str], workers: int | None) -> Iterator[str]:
    """A gunicorn server of ``app`` with ``code``'s gunicorn settings, ready; its base URL. The settings
    ship in the package (gateway/gunicorn_conf.py); older checkouts kept them in gunicorn.conf.py."""
    port = free_port()
    packaged = (code / "gateway" / "gunicorn_conf.py").exists()
    settings = "python:gateway.gunicorn_conf" if packaged else str(code / "gunicorn.conf.py")
    command = [sys.executable, "-m", "gunicorn", "--config", settings, *(["-w", str(workers)] if workers else []), app]
    process = subprocess.Popen(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code), **env,
                                                       "GUNICORN_BIND": f"127.0.0.1:{port}"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        yield base
    finally:
        # The graceful stop (nothing is in flight once wrk is done). gunicorn 27's quick stop (SIGINT,
        # SIGQUIT) can deadlock a gthread worker: its signal handler shuts the thread pool down while
        # the interrupted main thread holds the pool's lock in submit(), and the master then waits
        # out the graceful timeout (90 s).
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server at {base} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server at {base} did not answer /healthz within 60 s")


def wrk(base: str, lines: list[str], seconds: float, connections: int, expect: str = "", fresh: bool = False) -> Figure:
    """``fresh``: each line is meant to be sent once (a signed request with its own randomkey)."""
    with tempfile.TemporaryDirectory() as folder:
        script, data = Path(folder, "bench.lua"), Path(folder, "requests.tsv")
        script.write_text(WRK_SCRIPT)
        data.write_text("\n".join(lines) + "\n")
        command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={WRK_TIMEOUT}",
                   "-s", str(script), base,
                   "--", str(data), str(WRK_THREADS), expect]
        run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"wrk failed: {run.stderr or run.stdout}")
    output = run.stdout
    result = json.loads(next(line for line in output.splitlines() if line.startswith("BENCH "))[6:])
    return Figure(result["requests"] / result["seconds"], result["p99_ms"], result["bad"], result["socket_errors"],
                  fresh and result["sent"] > len(lines))


def checkout_lines(count: int, tag: str) -> list[str]:
    """Fresh signed CheckoutRequests: each randomkey and orderid used once."""
    base = int(time.time()) % 10**8 * 10**6  # orderids stay below the protocol's 10**15
    return [f"POST\t/checkout\t0\t{json.dumps(signed_checkout(orderid=base + i, randomkey=f'{tag}{base + i}'))}"
            for i in range(count)]


def open_sessions(base: str, count: int) -> list[str]:
    """Payment tokens of fresh checkouts, for page views."""
    tokens = []
    for line in checkout_lines(count, "page"):
        body = line.split("\t", 3)[3].encode()
        post = urllib.request.Request(base + "/checkout", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(post, timeout=10) as answer:
            tokens.append(json.load(answer)["paymenttoken"])
    return tokens


def prepare_database(code: Path, url: str) -> None:
    """The gateway's schema (migrated by ``code``) and the bare handler's table."""
    subprocess.run([sys.executable, "-c", f"from gateway.migrate import upgrade; upgrade({url!r})"], cwd=code,
                   env={**os.environ, "PYTHONPATH": str(code)}, check=True)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE IF NOT EXISTS {BARE_TABLE} (randomkey VARCHAR(128) PRIMARY KEY, body TEXT NOT NULL)"))
    engine.dispose()


def measure_setup(code: Path, url: str, workers: int | None, seconds: float, connections: int) -> dict[str, Figure]:
    prepare_database(code, url)
    count = int(seconds * 4000)
    common = {"DATABASE_URL": url, "GATEWAY_TRUSTED_PROXIES": "1", "GATEWAY_PRIVATE_KEY": PRIVATE_KEY}
    figures: dict[str, Figure] = {}
    # Each figure is the steady state: a second of the same kind of request first (every worker opens its
    # database connections and compiles its statements then), not counted.
    with server(code, "wsgi:app", {**common, "PYTHONPATH": str(code)}, workers) as base:
        wrk(base, checkout_lines(WARM_UP, "cw"), 1, connections, ACCEPTED, fresh=True)
        figures["POST /checkout"] = wrk(base, checkout_lines(count, "c"), seconds, connections, ACCEPTED, fresh=True)
        pages = [f"GET\t/pay?paymenttoken={token}\t1\t" for token in open_sessions(base, 64)]
        wrk(base, pages, 1, connections)
        figures["GET /pay?paymenttoken= (gzip)"] = wrk(base, pages, seconds, connections)
        wrk(base, ["GET\t/healthz\t0\t"], 1, connections)
        figures["GET /healthz"] = wrk(base, ["GET\t/healthz\t0\t"], seconds, connections)
    bare_path = f"{Path(__file__).resolve().parent}:{code}"
    for name, bare_url in (("bare md5", ""), ("bare md5 + one durable insert", url)):
        env = {**common, "PYTHONPATH": bare_path, "BENCH_BARE_DATABASE_URL": bare_url}
        with server(code, "bench:bare_app()", env, workers) as base:
            wrk(base, checkout_lines(WARM_UP, "bw"), 1, connections, ACCEPTED, fresh=True)
            figures[name] = wrk(base, checkout_lines(count, "b"), seconds, connections, ACCEPTED, fresh=True)
    return figures


def report(title: str, figures: dict[str, Figure]) -> None:
    print(title)
    for name, figure in figures.items():
        notes = ((f"  {figure.bad} not accepted" if figure.bad else "")
                 + (f"  {figure.socket_errors} socket errors or timeouts" if figure.socket_errors else "")
                 + ("  (bodies ran out: some retries)" if figure.repeated else ""))
        print(f"  {name:40s} {figure.rate:8.0f} req/s   p99 {figure.p99_ms:7.1f} ms{notes}")
    checkout, ceiling = figures["POST /checkout"], figures["bare md5 + one durable insert"]
    page, health = figures["GET /pay?paymenttoken= (gzip)"], figures["GET /healthz"]
    print(f"  checkout / bare + one durable insert: {checkout.rate / ceiling.rate:.2f} (target >= 0.5, p99 <= 50 ms)")
    print(f"  hosted page / healthz:                {page.rate / health.rate:.2f} (target >= 0.4, p99 <= 100 ms)")
    print(f"  bare + one durable insert / bare:     {ceiling.rate / figures['bare md5'].rate:.2f}")


def servers(code: Path, postgres_url: str, seconds: float, connections: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        sqlite = measure_setup(code, f"sqlite:///{folder}/bench.sqlite3", 2, seconds, connections)
    report(f"gunicorn -w 2, SQLite (embedded default); gateway from {code}; {connections} connections, {seconds:g} s each",
           sqlite)
    if postgres_url:
        postgres = measure_setup(code, postgres_url, None, seconds, connections)
        report("Procfile web command (the packaged gunicorn settings), PostgreSQL", postgres)
        drop_bare_table(postgres_url)


def drop_bare_table(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {BARE_TABLE}"))
    engine.dispose()


if __name__ == "__main__":
    main()
