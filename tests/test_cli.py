"""The `gateway` command: `serve` is for development only and shows no secret; settings come from the
environment alone; `gateway keys new` prints values production accepts (issue 20, items 10 and 11)."""
from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner
from werkzeug import serving

from gateway import cli, migrate
from gateway.config import load_settings

from .live import ROOT
from .test_config import STRONG

SERVE = ["serve", "--emulator-port", "0"]


def _serve(monkeypatch, env: dict[str, str]):  # type: ignore[no-untyped-def]
    """`gateway serve` with the server and the migration stood in for: what it prints, and whether it served."""
    served: list[object] = []
    monkeypatch.setattr(serving, "run_simple", lambda *args, **kwargs: served.append(args))
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


# Issue 22, item 5: a command that serves nothing starts fast and quietly -------------------------------------

# What only the servers need: the web app's extensions, gunicorn, migrations, the OpenAPI builder.
SERVER_ONLY = ("flask_babel", "flask_limiter", "gunicorn", "alembic", "apispec", "gateway.web", "gateway.console.views",
               "store_emulator")
PROBE = """
import sys
from gateway.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    assert not exit.code, exit.code
print("IMPORTED", " ".join(sorted(sys.modules)))
"""


def _imported_by(command: list[str], database_url: str = "sqlite://") -> tuple[set[str], str]:
    """The modules a `gateway` command imported in a fresh interpreter, and what it wrote to stderr."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, "-c", PROBE, *command], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split("IMPORTED", 1)[1].split()), result.stderr


# What a command that only reads the database does not need either: the web framework, the HTTP clients and
# the store's schemas (for a delivery), the metrics, the rate limiter (its defaults are known good).
NOT_FOR_READING = ("flask", "werkzeug", "requests", "urllib3", "marshmallow", "prometheus_client", "limits",
                   "gateway.notifications.client", "gateway.processors.sandbox", "gateway.processors.authorizenet")


def _server_only(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.startswith(SERVER_ONLY))


def _not_for_reading(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in NOT_FOR_READING or name in NOT_FOR_READING)


def test_item_5_attention_count_imports_nothing_only_a_server_needs_and_logs_no_start_up_line(clean_database):
    modules, stderr = _imported_by(["attention", "count"], clean_database)
    assert _server_only(modules) == []
    assert _not_for_reading(modules) == []
    assert "gateway starting" not in stderr and "DEVELOPMENT MODE" not in stderr
    assert stderr == ""


def test_item_6_a_database_without_tables_is_one_line_naming_the_command_that_fixes_it(tmp_path):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite3"}
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "attention", "count"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: the database has no gateway tables yet (no such table: payments): run `gateway db upgrade`"]


def test_item_6_a_database_that_cannot_be_reached_is_one_line():
    from .live import free_port

    result = CliRunner().invoke(cli.main, ["attention", "count"],
                                env={"DATABASE_URL": f"postgresql://127.0.0.1:{free_port()}/gateway"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: the database could not be used: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_item_5_keys_new_and_version_touch_no_database_code():
    for command in (["keys", "new"], ["--version"]):
        modules, stderr = _imported_by(command)
        assert _server_only(modules) == [] and not any(name.startswith("sqlalchemy") for name in modules), command
        assert stderr == "", command


def test_item_5_the_delivery_worker_is_a_server_and_still_says_which_mode_runs(monkeypatch, clean_database, caplog):
    from gateway.jobs import rounds

    ran: list[object] = []
    monkeypatch.setattr(rounds, "run_forever", lambda services, interval, batch: ran.append(services))
    result = CliRunner().invoke(cli.main, ["notifications", "work"], env={"DATABASE_URL": clean_database})
    assert result.exit_code == 0, result.output
    assert len(ran) == 1
    assert "gateway starting: environment=development" in caplog.text and "DEVELOPMENT MODE" in caplog.text


def test_gateway_version_prints_the_installed_distributions_version():
    from importlib.metadata import version

    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"gateway {version('threedcart-gateway')}\n"
