"""The package as a container image or a wheel deploy installs it: non-editable, run from elsewhere, by the
Procfile's own commands (issue 22, item 1)."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from .live import ROOT, StoreReceiver, free_port, wait_for, wait_until_up
from .protocol_helpers import RETURN_URL
from .test_two_nodes import SHOPPER, checkout, empty_redis, https_store, pay, production_database, production_env, through_proxy

REDIS_URL = "redis://127.0.0.1:6379/6"  # a Redis database of this test's own

# emulator/ too, as in a checkout: the gateway's wheel must leave it out by itself.
SOURCES = ("pyproject.toml", "README.md", "gateway", "templates", "emulator")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so no stale build/ of the checkout can leak into it."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
                   check=True, timeout=300)
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel, installed with the pinned constraints. The dependencies are the test
    environment's own (no network), and pip checks every one of them against constraints.txt."""
    venv = tmp_path_factory.mktemp("venv")
    # No pip of its own (installing one is most of a venv's making): this environment's pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Only the dependencies' directories: .pth files there (an editable gateway) are not processed.
    Path(site, "dependencies.pth").write_text("".join(path + "\n" for path in sys.path if path.endswith("-packages")))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index",
                    "-c", str(ROOT / "constraints.txt"), str(wheel)], check=True, timeout=300)
    return venv


@pytest.mark.wheel
@pytest.mark.slow
def test_wheel_ships_every_package_and_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "gateway").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names
    for template in (ROOT / "templates").rglob("*.html"):
        assert "gateway/templates/" + template.relative_to(ROOT / "templates").as_posix() in names
    assert "gateway/migrations/versions/0001_initial_schema.py" in names


@pytest.mark.wheel
@pytest.mark.slow
def test_wheel_leaves_the_store_emulator_out(wheel: Path) -> None:
    """A development tool, its own distribution (emulator/): production installs never carry it."""
    names = zipfile.ZipFile(wheel).namelist()
    assert (ROOT / "emulator" / "store_emulator" / "__init__.py").is_file()  # it exists, just not in here
    assert [name for name in names if "emulator" in name.lower()] == []


def procfile() -> dict[str, list[str]]:
    """The Procfile's process types and their commands, split as the shell would."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name.strip(): shlex.split(command) for name, command in (line.split(":", 1) for line in lines if line.strip())}


def in_venv(venv: Path, command: list[str]) -> list[str]:
    """A Procfile command as the wheel's install runs it: its own scripts (`gateway`) from the virtualenv; a
    dependency's (`gunicorn`) is installed with the dependency, outside it here, so run as its module."""
    script = venv / "bin" / command[0]
    return [str(script), *command[1:]] if script.exists() else [str(venv / "bin" / "python"), "-m", *command]


@pytest.fixture
def production_from_the_wheel(installed: Path, tmp_path: Path) -> Iterator[tuple[dict[str, str], StoreReceiver]]:
    """Production's settings (PostgreSQL and Redis of this test's own, strong keys, an https public URL, a metrics
    token, the sandbox by its opt-in), without the checkout on the path, and an https store."""
    database_url = production_database("wheel")
    empty_redis(REDIS_URL)
    store, certificate = https_store(tmp_path)
    environ = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "DATABASE_URL"}}
    env = {**environ, **production_env(database_url, certificate), "GATEWAY_RATELIMIT_STORAGE": REDIS_URL,
           "GUNICORN_BIND": f"127.0.0.1:{free_port()}", "PATH": f"{installed / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    with store:
        yield env, store


@pytest.mark.wheel
@pytest.mark.slow
@pytest.mark.live
def test_item_1_the_procfiles_own_commands_serve_production_from_the_installed_wheel(
        installed: Path, production_from_the_wheel: tuple[dict[str, str], StoreReceiver], tmp_path: Path) -> None:
    """From an empty directory: release migrates, web serves the hosted page, worker delivers what the store missed."""
    env, store = production_from_the_wheel
    empty = tmp_path / "empty"
    empty.mkdir()
    commands = procfile()
    assert set(commands) == {"release", "web", "worker"}
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)"],
                           cwd=empty, env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(installed)), where
    version = subprocess.run([str(installed / "bin" / "gateway"), "--version"], cwd=empty, env=env, check=True,
                             capture_output=True, text=True).stdout
    assert version == f"gateway {_project()['version']}\n"
    subprocess.run(in_venv(installed, commands["release"]), cwd=empty, env=env, check=True, timeout=120)
    url = "http://" + env["GUNICORN_BIND"]
    with ExitStack() as stack:
        for name in ("web", "worker"):
            process = subprocess.Popen(in_venv(installed, commands[name]), cwd=empty, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, start_new_session=True)
            stack.callback(_stop, process)
            if name == "web":
                wait_until_up(url + "/readyz", process)
        ready = requests.get(url + "/readyz", timeout=10).json()
        assert ready["status"] == "ok", ready
        store.answer = 503  # the store is down when the shopper pays: only the worker can tell it later
        token, csrf = checkout(url, store, orderid=22)
        assert pay(url, token, csrf).status_code == 202  # charged; the shopper waits on "confirming with the store"
        store.answer = {"processed": 1, "errorcode": "", "errormessage": ""}
        delivered = wait_for(lambda: store.received, timeout=30, what="the worker's delivery")
        assert delivered[0]["orderid"] == 22 and delivered[0]["approved"] == 1, delivered
        back = wait_for(lambda: _status_redirect(url, token), what="the shopper's page to go back to the store")
        assert back == RETURN_URL


def _status_redirect(url: str, token: str) -> str | None:
    """Where the shopper's waiting page sends the shopper, once the order is confirmed."""
    page = requests.get(url + "/pay/status", params={"paymenttoken": token}, headers=through_proxy(SHOPPER),
                        allow_redirects=False, timeout=10)
    return page.headers["Location"] if page.status_code == 303 else None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_every_dependency_is_pinned_in_the_constraints_file() -> None:
    """A dependency added to pyproject.toml without `bash scripts/lock.sh` would install unpinned."""
    project = _project()
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[_canonical(name)] = version
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)  # type: ignore[union-attr]
        assert _canonical(name) in pinned, f"{name} is not in constraints.txt: run bash scripts/lock.sh"


def test_the_emulators_dependencies_are_pinned_or_are_the_gateway() -> None:
    """`pip install -c constraints.txt -e ./emulator` installs the same versions as the gateway's own."""
    gateway = _project()["name"]
    wanted = tomllib.loads((ROOT / "emulator" / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {_canonical(line.split("==")[0]) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    for requirement in wanted:
        name = _canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))  # type: ignore[union-attr]
        assert name == _canonical(gateway) or name in pinned, f"{name} is not in constraints.txt"


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
