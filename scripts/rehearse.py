"""The production rehearsal: a purchase, a void and a refund end to end, as production runs them, on one machine.

    python scripts/rehearse.py --database-url postgresql://postgres@127.0.0.1:5432/rehearsal \
        [--redis-url redis://127.0.0.1:6379/7]

Runs this checkout's code the way docs/deployment.md deploys it: GATEWAY_ENV=production with fresh
strong keys (`gateway keys new`; the Private Key, which the developer portal issues, is made up here),
PostgreSQL, Redis rate limits, and the Procfile's three commands (release, then web under gunicorn,
then worker). The store emulator plays the store over https, with a certificate from a local
authority (store_emulator.tls) that every client trusts through REQUESTS_CA_BUNDLE; the gateway serves
https with the same certificate (a proxy terminates TLS in production) and may notify the loopback
store only because GATEWAY_NOTIFY_ALLOW_PRIVATE=1 says so.

Then a shopper buys twice. The merchant voids the first order (not settled yet); after
`gateway sandbox settle` (a refund needs a settled charge) refunds part of the second, then the rest.
Every step checks what a person would see: the store's thank-you page, the merchant's result line
and the order's status. Prints one line per step; exits 1 at the first step that fails (with the
servers' last log lines), 0 when all passed. Use a database of its own: the release migrates it and
the rehearsal adds payments to it.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import IO, Callable, Iterator

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "emulator")]

from store_emulator.tls import make_local_tls  # noqa: E402

from gateway.config import SANDBOX_IN_PRODUCTION_OPT_IN  # noqa: E402 - this checkout's, not an installed copy

START_SECONDS = 30
CARD = {"card_number": "4242424242424242", "expiry": "12/39", "cvc": "123", "holder": "Ada Shopper"}
CART = {  # $12.00 + $22.00 + $1.00 tax + $5.00 shipping = $40.00
    "qty-123abc": "1", "qty-asd1-22": "1", "tax": "1.00", "shipping": "5.00", "discount": "0.00", "testmode": "1"}


class RehearsalFailed(Exception):
    """A step did not do what production must; the text says what was seen instead."""


def expect(condition: bool, failure: str) -> None:
    if not condition:
        raise RehearsalFailed(failure)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {self.name}| {line}" for line in text)


class Rehearsal:
    def __init__(self, database_url: str, redis_url: str, workdir: Path, stack: ExitStack) -> None:
        self.workdir, self.stack = workdir, stack
        self.tls = make_local_tls(workdir / "tls")
        self.gateway_port, self.emulator_port = _free_port(), _free_port()
        self.gateway = f"https://127.0.0.1:{self.gateway_port}"
        self.emulator = f"https://127.0.0.1:{self.emulator_port}"
        self.servers: list[Server] = []
        self.env = self._production_environment(database_url, redis_url)
        # verify= on every call: a Session's own verify loses to REQUESTS_CA_BUNDLE from the environment.
        self.shopper = requests.Session()
        stack.callback(self.stop)

    def _production_environment(self, database_url: str, redis_url: str) -> dict[str, str]:
        """Everything but the keys `gateway keys new` makes (the emulator starts meanwhile)."""
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "emulator"), os.environ.get("PYTHONPATH")])),
            "GATEWAY_ENV": "production",
            "GATEWAY_PRIVATE_KEY": secrets.token_urlsafe(24),  # the developer portal issues it; any strong key will do
            "DATABASE_URL": database_url,
            "GATEWAY_RATELIMIT_STORAGE": redis_url,
            "GATEWAY_PUBLIC_URL": self.gateway,
            "GATEWAY_PROCESSOR": "sandbox",
            "GATEWAY_SANDBOX_IN_PRODUCTION": SANDBOX_IN_PRODUCTION_OPT_IN,
            "GATEWAY_NOTIFY_ALLOW_PRIVATE": "1",  # the rehearsal's store is on loopback
            "REQUESTS_CA_BUNDLE": str(self.tls.ca),  # the gateway and the emulator trust the local authority
            "GUNICORN_BIND": f"127.0.0.1:{self.gateway_port}",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_GRACEFUL_TIMEOUT": "5",  # the rehearsal ends with no request in flight
            "GUNICORN_THREADS": "8",
            "EMULATOR_GATEWAY_URL": self.gateway,
            "EMULATOR_PUBLIC_URL": self.emulator,
            # The gateway refuses to take a paid order again: each run numbers its orders afresh.
            "EMULATOR_FIRST_ORDERID": str(int(time.time()) * 10),
        }

    # Processes

    def run_gateway(self, arguments: list[str]) -> subprocess.CompletedProcess[str]:
        """A `gateway` command to completion; its failure ends the rehearsal with its own words."""
        done = subprocess.run(_command(["gateway", *arguments]), cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=60)
        expect(done.returncode == 0, f"`gateway {' '.join(arguments)}` exited {done.returncode}: "
                                     f"{(done.stderr or done.stdout).strip()[-2000:]}")
        return done

    def start(self, name: str, command: list[str], cwd: Path = ROOT) -> Server:
        log = self.workdir / f"{name}.log"
        handle: IO[bytes] = self.stack.enter_context(log.open("wb"))
        process = subprocess.Popen(_command(command), cwd=cwd, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        server = Server(name, process, log)
        self.servers.append(server)
        return server

    def gunicorn_tls(self, name: str) -> list[str]:
        """Serve https with the local certificate; a control socket of its own, not the one in ~/.gunicorn."""
        return ["--certfile", str(self.tls.certificate), "--keyfile", str(self.tls.key),
                "--control-socket", str(self.workdir / f"{name}.ctl")]

    def wait_until_answers(self, server: Server, url: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            expect(server.process.poll() is None, f"{server.name} exited {server.process.returncode} while starting")
            try:
                if requests.get(url, verify=str(self.tls.ca), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RehearsalFailed(f"{server.name} did not answer 200 at {url} within {START_SECONDS} s")

    # The steps

    def release_web_worker_emulator(self) -> str:
        store = self.start("emulator", ["gunicorn", "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{self.emulator_port}",
                                        *self.gunicorn_tls("emulator"), "store_emulator.wsgi:app"],
                           cwd=self.workdir)  # not beside the gateway's gunicorn.conf.py, which gunicorn would read
        self.env.update(_assignments(self.run_gateway(["keys", "new"]).stdout))
        procfile = _procfile()
        self.run_gateway(shlex.split(procfile["release"])[1:])
        web = self.start("web", [*shlex.split(procfile["web"]), *self.gunicorn_tls("web")])
        self.start("worker", shlex.split(procfile["worker"]))
        self.wait_until_answers(web, self.gateway + "/readyz")
        self.wait_until_answers(store, self.emulator + "/")
        return f"keys made, release migrated; web {self.gateway} (readyz 200), worker, emulator {self.emulator}"

    def stop(self) -> None:
        """Every server at once (SIGTERM to its process group), then each waited for; SIGKILL after 10 s."""
        self.shopper.close()  # an open keep-alive connection would hold gunicorn's graceful stop
        for server in self.servers:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGTERM)
        for server in self.servers:
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()

    def purchase(self) -> int:
        """The shopper checks out at the store, pays on the hosted page and lands on the store's thank-you page."""
        handoff = self.shopper.post(self.emulator + "/checkout", data=CART, allow_redirects=False, timeout=30,
                                   verify=str(self.tls.ca))
        expect(handoff.status_code == 302, f"the store's checkout answered {handoff.status_code}: {_page_text(handoff.text)}")
        pay_url = handoff.headers["Location"]
        expect(pay_url.startswith(self.gateway + "/pay?paymenttoken="), f"the shopper was sent to {pay_url}")
        form = self.shopper.get(pay_url, timeout=30, verify=str(self.tls.ca))
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        expect(form.status_code == 200 and csrf is not None, f"the hosted page answered {form.status_code}")
        token = pay_url.split("paymenttoken=", 1)[1]
        paid = self.shopper.post(self.gateway + "/pay/submit", data={"paymenttoken": token, "csrf": csrf.group(1), **CARD},  # type: ignore[union-attr]
                                 timeout=30, verify=str(self.tls.ca))
        thanks = re.search(r"Thank you, order AB-(\d+) is paid", paid.text)
        expect(paid.url.startswith(self.emulator + "/return") and thanks is not None,
               f"after Pay the shopper saw {paid.url}: {_page_text(paid.text)}")
        return int(thanks.group(1))  # type: ignore[union-attr]

    def merchant_refund(self, orderid: int, dollars: str, back: str, expected_status: str) -> str:
        """The merchant's Void/Refund button (blank: the whole order, or what is left of it), approved for `back`."""
        page = self.shopper.post(f"{self.emulator}/admin/orders/{orderid}/refund", data={"amount": dollars}, timeout=30,
                                 verify=str(self.tls.ca))
        result = re.search(r'id="result">(.*?)</p>', page.text, re.S)
        line = unescape(result.group(1)) if result else _page_text(page.text)
        expect(f": approved: {back} back" in line, f"Void/Refund of order {orderid} ({dollars or 'blank'}): {line}")
        status = re.search(rf'id="order-{orderid}">.*?class="status">([^<]*)', page.text, re.S)
        expect(status is not None and status.group(1) == expected_status,
               f"order {orderid} is {status.group(1) if status else '?'!r}, not {expected_status!r}")
        return f"{line} (order {expected_status})"

    def settle(self) -> str:
        return self.run_gateway(["sandbox", "settle"]).stdout.strip()

    def steps(self) -> Iterator[tuple[str, Callable[[], str]]]:
        """Each step's name and what runs it; a purchase's order number is known once it has run."""
        orders: list[int] = []

        def buy() -> str:
            orders.append(self.purchase())
            return f"order AB-{orders[-1]} paid, the store told over https"

        yield "emulator; keys; release, then web and worker (the Procfile)", self.release_web_worker_emulator
        yield "purchase", buy
        yield "void (the whole order, not settled)", lambda: self.merchant_refund(orders[0], "", "$40.00", "refunded")
        yield "purchase", buy
        yield "gateway sandbox settle", self.settle
        yield "partial refund of $15.00", lambda: self.merchant_refund(orders[1], "15.00", "$15.00",
                                                                         "partly refunded")
        yield "refund of what is left (amount blank)", lambda: self.merchant_refund(orders[1], "", "$25.00", "refunded")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


def _command(words: list[str]) -> list[str]:
    """A console script from this interpreter's environment (the one running the rehearsal), else from PATH."""
    local = Path(sys.executable).parent / words[0]
    return [str(local) if local.exists() else shutil.which(words[0]) or words[0], *words[1:]]


def _assignments(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def _page_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<style.*?</style>", "", html))).strip()[:300]


def rehearse(database_url: str, redis_url: str, say: Callable[[str], None] = print) -> bool:
    """Every step in order; False at the first that fails, after printing why and the servers' last lines."""
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-rehearsal-")))
        rehearsal: Rehearsal | None = None
        step = "local certificate"
        try:
            rehearsal = Rehearsal(database_url, redis_url, workdir, stack)
            for step, run in rehearsal.steps():
                say(f"ok    {step}: {run()}")
        except (RehearsalFailed, requests.RequestException, subprocess.TimeoutExpired) as failure:
            say(f"FAIL  {step}: {failure}")
            for server in rehearsal.servers if rehearsal else []:
                say(server.tail())
            return False
    say("production rehearsal passed: purchase, void and refund under GATEWAY_ENV=production over https")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""),
                        help="a PostgreSQL database of the rehearsal's own (default: DATABASE_URL)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7", help="rate-limit counters (default: %(default)s)")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL database (postgresql://...), as production needs")
    return 0 if rehearse(args.database_url, args.redis_url) else 1


if __name__ == "__main__":
    sys.exit(main())
