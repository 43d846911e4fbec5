"""Configuration: safe development defaults, and a loud refusal to run production without secrets."""
from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from gateway import create_app
from gateway.config import ConfigError, load_settings

from .live import ROOT

PRODUCTION = {
    "GATEWAY_ENV": "production",
    "GATEWAY_PRIVATE_KEY": "live-private-key",
    "GATEWAY_SECRET_KEY": "live-secret",
    "GATEWAY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgresql://gateway@db/gateway",
    "GATEWAY_PUBLIC_URL": "https://pay.example.com/",
    "GATEWAY_PROCESSOR": "authorizenet",
    "GATEWAY_RATELIMIT_STORAGE": "redis://127.0.0.1:6379/0",
}


def test_development_defaults_need_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.processor == "sandbox" and settings.redirect_method == "GET" and settings.session_minutes == 30
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'gateway.sqlite3'}"
    assert settings.notify_allow_private is True


@pytest.mark.parametrize("missing", sorted(PRODUCTION.keys() - {"GATEWAY_ENV"}))
def test_production_refuses_to_start_naming_the_missing_secret(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_production_settings_are_strict():
    settings = load_settings(PRODUCTION)
    assert settings.public_url == "https://pay.example.com"
    assert settings.notify_allow_private is False and settings.is_production


def test_bad_values_are_refused_clearly():
    with pytest.raises(ConfigError, match="GATEWAY_REDIRECT_METHOD"):
        load_settings({"GATEWAY_REDIRECT_METHOD": "PUT"})
    with pytest.raises(ConfigError, match="not a number"):
        load_settings({"GATEWAY_SESSION_MINUTES": "soon"})
    with pytest.raises(ConfigError, match="GATEWAY_ENCRYPTION_KEY"):
        create_app(load_settings({}, encryption_key="short", database_url="sqlite://"))
    with pytest.raises(ConfigError, match="GATEWAY_PROCESSOR"):
        create_app(load_settings({}, processor="nonesuch", database_url="sqlite://"))


def test_gunicorn_entry_point_refuses_production_without_secrets():
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True, text=True,
                            env={"GATEWAY_ENV": "production", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode != 0
    assert "refusing to start in production: set GATEWAY_PRIVATE_KEY" in result.stderr


def test_case_2_production_refuses_to_run_on_an_unnamed_processor():
    env = {k: v for k, v in PRODUCTION.items() if k != "GATEWAY_PROCESSOR"}
    with pytest.raises(ConfigError, match="GATEWAY_PROCESSOR"):
        load_settings(env)


def test_case_2_sandbox_in_production_needs_the_deliberate_opt_in():
    env = {**PRODUCTION, "GATEWAY_PROCESSOR": "sandbox"}
    with pytest.raises(ConfigError, match="approves cards without charging"):
        load_settings(env)
    with pytest.raises(ConfigError):
        load_settings({**env, "GATEWAY_SANDBOX_IN_PRODUCTION": "1"})
    settings = load_settings({**env, "GATEWAY_SANDBOX_IN_PRODUCTION": "yes-approve-cards-without-charging"})
    assert settings.processor == "sandbox" and settings.is_production


@pytest.mark.parametrize("environment", ["staging", "prod", "Production "])
def test_case_2_development_keys_are_never_used_outside_development(environment):
    with pytest.raises(ConfigError, match="GATEWAY_PRIVATE_KEY"):
        load_settings({"GATEWAY_ENV": environment})
    settings = load_settings({**PRODUCTION, "GATEWAY_ENV": environment})
    assert settings.is_production and settings.private_key == "live-private-key"


@pytest.mark.parametrize("name", ["GATEWAY_PRIVATE_KEY", "GATEWAY_SECRET_KEY", "GATEWAY_ENCRYPTION_KEY"])
def test_case_2_the_published_development_secrets_are_refused_in_production(name):
    from gateway import config

    development_value = {"GATEWAY_PRIVATE_KEY": config.DEV_PRIVATE_KEY, "GATEWAY_SECRET_KEY": config.DEV_SECRET_KEY,
                         "GATEWAY_ENCRYPTION_KEY": config.DEV_ENCRYPTION_KEY}[name]
    with pytest.raises(ConfigError, match=name):
        load_settings({**PRODUCTION, name: development_value})


def test_case_2_start_up_log_says_which_mode_runs(caplog, tmp_path):
    import logging

    caplog.set_level(logging.INFO, logger="gateway")
    app = create_app(load_settings({}, database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}"))
    app.extensions["gateway"].db.dispose()
    text = caplog.text
    assert "environment=development processor=sandbox" in text and "DEVELOPMENT MODE" in text
    caplog.clear()
    env = {**PRODUCTION, "GATEWAY_PROCESSOR": "sandbox", "GATEWAY_SANDBOX_IN_PRODUCTION": "yes-approve-cards-without-charging"}
    app = create_app(load_settings(env, database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}"))
    app.extensions["gateway"].db.dispose()
    assert "environment=production processor=sandbox" in caplog.text and "SANDBOX IN PRODUCTION" in caplog.text
    assert "live-private-key" not in caplog.text
