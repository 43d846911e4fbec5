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
