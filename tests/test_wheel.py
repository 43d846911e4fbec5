"""The package as a container image or a wheel deploy installs it: non-editable, run from elsewhere."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from .live import ROOT, ConfiguredGunicorn, gateway_env
from .protocol_helpers import PRIVATE_KEY, signed_checkout

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
    """A fresh virtualenv holding the wheel; its dependencies come from the test's own environment."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Only the dependencies' directories: .pth files there (an editable gateway) are not processed.
    Path(site, "dependencies.pth").write_text("".join(path + "\n" for path in sys.path if path.endswith("-packages")))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=120)
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


def test_wheel_leaves_the_store_emulator_out(wheel: Path) -> None:
    """A development tool, its own distribution (emulator/): production installs never carry it."""
    names = zipfile.ZipFile(wheel).namelist()
    assert (ROOT / "emulator" / "store_emulator" / "__init__.py").is_file()  # it exists, just not in here
    assert [name for name in names if "emulator" in name.lower()] == []


@pytest.mark.wheel
@pytest.mark.slow
@pytest.mark.live
def test_installed_wheel_serves_hosted_page_from_any_directory(installed: Path, clean_database: str,
                                                               tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**gateway_env(clean_database, PRIVATE_KEY), "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4"}
    python = installed / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import gateway; print(gateway.__file__)"], cwd=elsewhere,
                           env={**os.environ, **env}, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(installed)), where
    subprocess.run([str(installed / "bin" / "gateway"), "db", "upgrade"], cwd=elsewhere, env={**os.environ, **env},
                   check=True, timeout=120)
    with ConfiguredGunicorn(env, python=python, app="gateway:create_app()", cwd=elsewhere) as server:
        answer = requests.post(server.url + "/checkout", json=signed_checkout(), timeout=10).json()
        assert answer["errormessage"] == "", answer
        page = requests.get(answer["redirecturl"], params={"paymenttoken": answer["paymenttoken"]}, timeout=10)
        assert page.status_code == 200
        assert 'name="card_number"' in page.text and "item name 123" in page.text
        missing = requests.get(server.url + "/pay", params={"paymenttoken": "nope"}, timeout=10)
        assert missing.status_code == 404 and "We could not find this payment" in missing.text


def test_every_dependency_is_pinned_in_the_constraints_file() -> None:
    """A dependency added to pyproject.toml without `bash scripts/lock.sh` would install unpinned."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
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
    import tomllib

    gateway = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    wanted = tomllib.loads((ROOT / "emulator" / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {_canonical(line.split("==")[0]) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    for requirement in wanted:
        name = _canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))  # type: ignore[union-attr]
        assert name == _canonical(gateway) or name in pinned, f"{name} is not in constraints.txt"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
