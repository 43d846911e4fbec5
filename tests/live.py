"""Real servers on loopback: the gateway under gunicorn, and a store that receives notifications."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StoreReceiver:
    """The store's notificationurl: records every CompleteOrderRequest and answers as told."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer: dict[str, Any] | int = {"processed": 1, "errorcode": "", "errormessage": ""}
        self.delay = 0.0  # seconds before answering: a slow store
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                answer = receiver.answer
                if isinstance(answer, int):
                    self.send_response(answer)
                    self.end_headers()
                    return
                receiver.received.append(json.loads(body))
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/paymentreceive_json.asp?gw=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "StoreReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class Gunicorn:
    """The gateway as production runs it: gunicorn workers in their own processes."""

    def __init__(self, env: dict[str, str], workers: int = 2, config: Path | None = None, app: str = "wsgi:app",
                 health: str = "/healthz", access_log: bool = False, quick_stop: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{self.port}"}
        command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
                   "--timeout", "60", "--graceful-timeout", "2"]
        if config is not None:
            command += ["--config", str(config)]
        if access_log:
            command += ["--access-logfile", "-"]
        self.command = [*command, app]
        self.health = health
        # SIGQUIT: gunicorn's quick shutdown, for a server with nothing to finish (SIGTERM waits up to
        # the graceful timeout for the connections a browser keeps alive).
        self.stop_signal = signal.SIGQUIT if quick_stop else signal.SIGTERM
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Gunicorn":
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self.log,
                                        stderr=subprocess.PIPE, start_new_session=True)
        wait_until_up(self.url + self.health, self.process)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, self.stop_signal)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        """What the server wrote to standard output (its access log, when asked for)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout


class ConfiguredGunicorn:
    """Gunicorn as the Procfile runs it: every setting from gateway/gunicorn_conf.py and the environment."""

    def __init__(self, env: dict[str, str], python: Path = Path(sys.executable), app: str = "gateway:create_app()",
                 cwd: Path = ROOT) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "GATEWAY_PUBLIC_URL": self.url, **env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
        self.command = [str(python), "-m", "gunicorn", "--config", "python:gateway.gunicorn_conf", app]
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "ConfiguredGunicorn":
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        wait_until_up(self.url + "/healthz", self.process)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def gateway_env(database_url: str, private_key: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "GATEWAY_PRIVATE_KEY": private_key, "GATEWAY_ENV": "development"}


