"""The `gateway` command: `serve` is for development only and shows no secret; settings come from the
environment alone; `gateway keys new` prints values production accepts (issue 20, items 10 and 11)."""
from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from gateway import cli, migrate
from gateway.config import load_settings

from .live import ROOT
from .test_config import STRONG

SERVE = ["serve", "--emulator-port", "0"]


def _serve(monkeypatch, env: dict[str, str]):  # type: ignore[no-untyped-def]
    """`gateway serve` with the server and the migration stood in for: what it prints, and whether it served."""
    served: list[object] = []
    monkeypatch.setattr(cli, "run_simple", lambda *args, **kwargs: served.append(args))
    monkeypatch.setattr(migrate, "upgrade", lambda url: None)
    return CliRunner().invoke(cli.main, SERVE, env=env), served


def test_item_10_serve_under_production_is_refused_before_it_prints_or_serves_anything(monkeypatch):
    result, served = _serve(monkeypatch, STRONG)
    assert result.exit_code == 2 and served == []
    assert "development server" in result.output and "gunicorn" in result.output
    assert STRONG["GATEWAY_PRIVATE_KEY"] not in result.output and "Checkout URL" not in result.output


def test_item_10_serve_in_development_prints_its_urls_but_no_secret(monkeypatch):
    private_key = "a-development-key-of-this-machine"
    database = "postgresql://gateway:hunter2-db-password@127.0.0.1:5432/gateway"
    result, served = _serve(monkeypatch, {"GATEWAY_PRIVATE_KEY": private_key, "DATABASE_URL": database})
    assert result.exit_code == 0, result.output
    assert len(served) == 1
    lines = result.output.splitlines()
    assert "Gateway Checkout URL:   http://127.0.0.1:5000/checkout" in lines
    assert "Gateway Post-Order URL: http://127.0.0.1:5000/post-order" in lines
    assert "Private Key:            from GATEWAY_PRIVATE_KEY (not shown)" in lines
    assert "Database:               postgresql://gateway:***@127.0.0.1:5432/gateway" in lines
    assert "Processor:              sandbox" in lines
    assert private_key not in result.output and "hunter2" not in result.output


def test_item_10_env_file_option_is_gone_instead_of_failing_on_a_missing_package(tmp_path):
    env_file = tmp_path / "gateway.env"
    env_file.write_text("GATEWAY_REDIRECT_METHOD=POST\n")
    result = CliRunner().invoke(cli.main, ["--env-file", str(env_file), "openapi"])
    assert result.exit_code == 2 and "No such option '--env-file'" in result.output


def test_item_10_a_dotenv_file_in_the_working_directory_is_never_read(tmp_path):
    """Whether a stray .env was read depended on python-dotenv happening to be installed."""
    (tmp_path / ".env").write_text("GATEWAY_ENV=production\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "openapi"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"openapi"' in result.stdout


def _keys_new() -> dict[str, str]:
    result = CliRunner().invoke(cli.main, ["keys", "new"], env={"GATEWAY_ENV": "production"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("# GATEWAY_PRIVATE_KEY is issued by the 3dcart developer portal")
    return dict(line.split("=", 1) for line in lines if not line.startswith("#"))


def test_item_11_keys_new_prints_fresh_values_for_every_secret_that_production_accepts():
    fresh, again = _keys_new(), _keys_new()
    assert set(fresh) == {"GATEWAY_SECRET_KEY", "GATEWAY_ENCRYPTION_KEY", "GATEWAY_METRICS_TOKEN"}
    assert all(fresh[name] != again[name] for name in fresh)
    settings = load_settings({**STRONG, **fresh})
    assert settings.secret_key == fresh["GATEWAY_SECRET_KEY"] and settings.metrics_token == fresh["GATEWAY_METRICS_TOKEN"]
