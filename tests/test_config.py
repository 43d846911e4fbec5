"""Configuration: safe development defaults, and a loud refusal to run production without secrets."""
from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import fields, replace

import pytest
from cryptography.fernet import Fernet
from limits import parse_many

from gateway import create_app
from gateway.config import ConfigError, Settings, load_settings

from .live import ROOT

LIVE_PRIVATE_KEY = "Vq7Zr2Lm9Xc4Tb8Nw3Hs6Jd1Pk5Gf0Ya"
PRODUCTION = {
    "GATEWAY_ENV": "production",
    "GATEWAY_PRIVATE_KEY": LIVE_PRIVATE_KEY,
    "GATEWAY_SECRET_KEY": "mE4uK8wQ2zR6yT1oP9iU3aS7dF5gH0jL",
    "GATEWAY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgresql://gateway@db/gateway",
    "GATEWAY_PUBLIC_URL": "https://pay.example.com/",
    "GATEWAY_PROCESSOR": "authorizenet",
    "GATEWAY_RATELIMIT_STORAGE": "redis://127.0.0.1:6379/0",
}
STRONG = {**PRODUCTION, "GATEWAY_METRICS_TOKEN": "tK3mW8qZ1xR5vN9bL2cJ7hF4"}


def test_development_defaults_need_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.processor == "sandbox" and settings.redirect_method == "GET" and settings.session_minutes == 30
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'gateway.sqlite3'}"
    assert settings.notify_allow_private is True


@pytest.mark.parametrize("missing", sorted(PRODUCTION.keys() - {"GATEWAY_ENV"}))
def test_production_refuses_to_start_naming_the_missing_secret(missing):
    env = {k: v for k, v in STRONG.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_production_settings_are_strict():
    settings = load_settings(STRONG)
    assert settings.public_url == "https://pay.example.com"
    assert settings.notify_allow_private is False and settings.is_production


def test_bad_values_are_refused_clearly():
    with pytest.raises(ConfigError, match="GATEWAY_REDIRECT_METHOD"):
        load_settings({"GATEWAY_REDIRECT_METHOD": "PUT"})
    with pytest.raises(ConfigError, match="GATEWAY_SESSION_MINUTES must be a number"):
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
    env = {k: v for k, v in STRONG.items() if k != "GATEWAY_PROCESSOR"}
    with pytest.raises(ConfigError, match="GATEWAY_PROCESSOR"):
        load_settings(env)


def test_case_2_sandbox_in_production_needs_the_deliberate_opt_in():
    env = {**STRONG, "GATEWAY_PROCESSOR": "sandbox"}
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
    settings = load_settings({**STRONG, "GATEWAY_ENV": environment})
    assert settings.is_production and settings.private_key == LIVE_PRIVATE_KEY


@pytest.mark.parametrize("name", ["GATEWAY_PRIVATE_KEY", "GATEWAY_SECRET_KEY", "GATEWAY_ENCRYPTION_KEY"])
def test_case_2_the_published_development_secrets_are_refused_in_production(name):
    from gateway import config

    development_value = {"GATEWAY_PRIVATE_KEY": config.DEV_PRIVATE_KEY, "GATEWAY_SECRET_KEY": config.DEV_SECRET_KEY,
                         "GATEWAY_ENCRYPTION_KEY": config.DEV_ENCRYPTION_KEY}[name]
    with pytest.raises(ConfigError, match=name):
        load_settings({**STRONG, name: development_value})


def test_case_2_start_up_log_says_which_mode_runs(caplog, tmp_path):
    import logging

    caplog.set_level(logging.INFO, logger="gateway")
    app = create_app(load_settings({}, database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}"))
    app.extensions["gateway"].db.dispose()
    text = caplog.text
    assert "environment=development processor=sandbox" in text and "DEVELOPMENT MODE" in text
    caplog.clear()
    env = {**STRONG, "GATEWAY_PROCESSOR": "sandbox", "GATEWAY_SANDBOX_IN_PRODUCTION": "yes-approve-cards-without-charging"}
    app = create_app(replace(load_settings(env), database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}"))
    app.extensions["gateway"].db.dispose()
    assert "environment=production processor=sandbox" in caplog.text and "SANDBOX IN PRODUCTION" in caplog.text
    assert LIVE_PRIVATE_KEY not in caplog.text


# Issue 20, item 9: weak production settings are refused at start, each naming its setting -------------

WEAK_PRODUCTION = {
    "private-key-of-one-character": ({"GATEWAY_PRIVATE_KEY": "k"}, "GATEWAY_PRIVATE_KEY"),
    "secret-key-is-secret": ({"GATEWAY_SECRET_KEY": "secret"}, "GATEWAY_SECRET_KEY"),
    "long-but-guessable-secret-key": ({"GATEWAY_SECRET_KEY": "secret" * 8}, "GATEWAY_SECRET_KEY"),
    "same-value-for-both-keys": ({"GATEWAY_SECRET_KEY": LIVE_PRIVATE_KEY}, "GATEWAY_SECRET_KEY"),
    "weak-previous-private-key": ({"GATEWAY_PRIVATE_KEY_PREVIOUS": "old"}, "GATEWAY_PRIVATE_KEY_PREVIOUS"),
    "second-encryption-key-not-fernet": ({"GATEWAY_ENCRYPTION_KEY": PRODUCTION["GATEWAY_ENCRYPTION_KEY"] + ",short"},
                                         "GATEWAY_ENCRYPTION_KEY"),
    "memory-rate-limit-storage": ({"GATEWAY_RATELIMIT_STORAGE": "memory://"}, "GATEWAY_RATELIMIT_STORAGE"),
    "sqlite-database": ({"DATABASE_URL": "sqlite:////var/lib/gateway.sqlite3"}, "DATABASE_URL"),
    "http-public-url": ({"GATEWAY_PUBLIC_URL": "http://pay.example.com"}, "GATEWAY_PUBLIC_URL"),
    "malformed-public-url": ({"GATEWAY_PUBLIC_URL": "pay.example.com"}, "GATEWAY_PUBLIC_URL"),
    "public-url-without-host": ({"GATEWAY_PUBLIC_URL": "https://"}, "GATEWAY_PUBLIC_URL"),
    "public-url-with-a-bad-port": ({"GATEWAY_PUBLIC_URL": "https://pay.example.com:https"}, "GATEWAY_PUBLIC_URL"),
    "zero-session-minutes": ({"GATEWAY_SESSION_MINUTES": "0"}, "GATEWAY_SESSION_MINUTES"),
    "negative-max-declines": ({"GATEWAY_MAX_DECLINES": "-1"}, "GATEWAY_MAX_DECLINES"),
    "zero-delivery-attempts": ({"GATEWAY_NOTIFY_MAX_ATTEMPTS": "0"}, "GATEWAY_NOTIFY_MAX_ATTEMPTS"),
    "negative-idle-minutes": ({"GATEWAY_CONSOLE_IDLE_MINUTES": "-5"}, "GATEWAY_CONSOLE_IDLE_MINUTES"),
    "negative-trusted-proxies": ({"GATEWAY_TRUSTED_PROXIES": "-1"}, "GATEWAY_TRUSTED_PROXIES"),
    "absurd-trusted-proxies": ({"GATEWAY_TRUSTED_PROXIES": "500"}, "GATEWAY_TRUSTED_PROXIES"),
    "unparseable-card-limit": ({"GATEWAY_LIMIT_CARD_PER_ADDRESS": "ten a minute"}, "GATEWAY_LIMIT_CARD_PER_ADDRESS"),
    "card-limit-allowing-nothing": ({"GATEWAY_LIMIT_CARD_PER_STORE": "0 per minute"}, "GATEWAY_LIMIT_CARD_PER_STORE"),
    "metrics-without-token": ({"GATEWAY_METRICS_TOKEN": ""}, "GATEWAY_METRICS_TOKEN"),
}


@pytest.mark.parametrize("change, setting", WEAK_PRODUCTION.values(), ids=WEAK_PRODUCTION.keys())
def test_item_9_production_refuses_a_weak_setting_naming_it(change, setting):
    with pytest.raises(ConfigError, match=setting):
        load_settings({**STRONG, **change})


def test_item_9_a_refused_setting_is_one_line_and_exit_status_2():
    env = {**STRONG, "GATEWAY_TRUSTED_PROXIES": "-1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gateway: GATEWAY_TRUSTED_PROXIES must be between 0 and 10, got -1"]


@pytest.mark.live
def test_item_9_gunicorn_refuses_a_weak_setting_before_any_worker_starts():
    """Checked in the master by gateway/gunicorn_conf.py: a worker that failed to load would be restarted forever."""
    env = {**STRONG, "GATEWAY_SECRET_KEY": "secret", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "GUNICORN_BIND": "127.0.0.1:0"}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--config", "python:gateway.gunicorn_conf", "gateway:create_app()"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "GATEWAY_SECRET_KEY is weak" in result.stderr
    assert "Traceback" not in result.stderr


def test_item_9_development_still_runs_on_no_settings_at_all(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = create_app(load_settings({}))
    app.extensions["gateway"].db.dispose()
    assert app.extensions["gateway"].settings.ratelimit_storage == "memory://"


def test_item_9_development_refuses_values_no_environment_can_run_on():
    with pytest.raises(ConfigError, match="GATEWAY_TRUSTED_PROXIES"):
        load_settings({"GATEWAY_TRUSTED_PROXIES": "-1"})
    with pytest.raises(ConfigError, match="GATEWAY_LIMIT_PAGE_PER_ADDRESS"):
        load_settings({"GATEWAY_LIMIT_PAGE_PER_ADDRESS": "lots"})


def test_the_default_rate_limits_parse_as_the_limiter_reads_them():
    """load_settings reads only the limits set in the environment, trusting the defaults: this is why."""
    defaults = {field.name: field.default for field in fields(Settings) if field.name.startswith("limit_")}
    assert len(defaults) == 4
    for name, text in defaults.items():
        assert all(item.amount >= 1 for item in parse_many(str(text))), name


def test_item_9_notifications_to_private_addresses_in_production_warn_loudly(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="gateway")
    settings = load_settings({**STRONG, "GATEWAY_NOTIFY_ALLOW_PRIVATE": "yes"})
    app = create_app(replace(settings, database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}"))
    app.extensions["gateway"].db.dispose()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert any("GATEWAY_NOTIFY_ALLOW_PRIVATE IN PRODUCTION" in record.getMessage() for record in warnings)


def test_item_9_metrics_without_a_token_in_production_is_an_explicit_logged_opt_out(caplog, clean_database):
    caplog.set_level(logging.INFO, logger="gateway")
    settings = load_settings({**PRODUCTION, "GATEWAY_METRICS_PUBLIC": "yes"})
    app = create_app(replace(settings, database_url=clean_database))
    assert app.test_client().get("/metrics").status_code == 200
    app.extensions["gateway"].db.dispose()
    assert "GATEWAY_METRICS_PUBLIC: /metrics is served to anyone" in caplog.text


@pytest.mark.parametrize("variable", ["GATEWAY_RETENTION_REPLAY_DAYS", "GATEWAY_RETENTION_HISTORY_DAYS",
                                      "GATEWAY_RETENTION_CONSOLE_HOURS", "GATEWAY_RETENTION_BATCH_ROWS",
                                      "GATEWAY_RETENTION_BATCHES_PER_ROUND"])
def test_retention_settings_must_be_positive(variable):
    assert getattr(load_settings({variable: "9"}), variable.removeprefix("GATEWAY_").lower()) == 9
    with pytest.raises(ConfigError, match=f"{variable} must be a positive whole number"):
        load_settings({variable: "0"})


def test_checkout_replay_records_must_outlive_the_payment_page():
    with pytest.raises(ConfigError, match="GATEWAY_RETENTION_REPLAY_DAYS must be longer than GATEWAY_SESSION_MINUTES"):
        load_settings({"GATEWAY_RETENTION_REPLAY_DAYS": "1", "GATEWAY_SESSION_MINUTES": "1440"})
