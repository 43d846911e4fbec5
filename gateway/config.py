"""Settings read from the environment, with development defaults that refuse to run in production."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEV_PRIVATE_KEY = "dev-private-key-change-me"
DEV_SECRET_KEY = "dev-secret-key-change-me"
# A valid Fernet key, used only when GATEWAY_ENV is not production.
DEV_ENCRYPTION_KEY = "ZGV2LWVuY3J5cHRpb24ta2V5LW5vdC1mb3ItcHJvZCE="

REQUIRED_IN_PRODUCTION = (
    "GATEWAY_PRIVATE_KEY",
    "GATEWAY_SECRET_KEY",
    "GATEWAY_ENCRYPTION_KEY",
    "DATABASE_URL",
    "GATEWAY_PUBLIC_URL",
)


class ConfigError(RuntimeError):
    """The environment cannot run the gateway safely."""


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    private_key: str = DEV_PRIVATE_KEY
    secret_key: str = DEV_SECRET_KEY
    encryption_key: str = DEV_ENCRYPTION_KEY
    database_url: str = ""
    public_url: str = ""
    processor: str = "sandbox"
    session_minutes: int = 30
    redirect_method: str = "GET"
    max_declines: int = 3
    sandbox_settle_seconds: int = 86400
    notify_timeout_seconds: float = 10.0
    notify_max_attempts: int = 12
    notify_allow_private: bool = False
    authorizenet_test_mode: bool = False
    console_idle_minutes: int = 15
    log_json: bool = False
    metrics_token: str = ""

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


def _default_database_url() -> str:
    instance = Path.cwd() / "instance"
    instance.mkdir(exist_ok=True)
    return f"sqlite:///{instance / 'gateway.sqlite3'}"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment; in production every secret must be given explicitly."""
    env = os.environ if environ is None else environ
    environment = env.get("GATEWAY_ENV", "development").strip().lower()
    if environment == "production":
        missing = [name for name in REQUIRED_IN_PRODUCTION if not env.get(name)]
        if missing:
            raise ConfigError(
                "refusing to start in production: set " + ", ".join(missing)
            )
    redirect_method = env.get("GATEWAY_REDIRECT_METHOD", "GET").strip().upper()
    if redirect_method not in {"GET", "POST"}:
        raise ConfigError("GATEWAY_REDIRECT_METHOD must be GET or POST")
    try:
        values = dict(
            environment=environment,
            private_key=env.get("GATEWAY_PRIVATE_KEY") or DEV_PRIVATE_KEY,
            secret_key=env.get("GATEWAY_SECRET_KEY") or DEV_SECRET_KEY,
            encryption_key=env.get("GATEWAY_ENCRYPTION_KEY") or DEV_ENCRYPTION_KEY,
            database_url=env.get("DATABASE_URL") or "",
            public_url=(env.get("GATEWAY_PUBLIC_URL") or "").rstrip("/"),
            processor=(env.get("GATEWAY_PROCESSOR") or "sandbox").strip().lower(),
            session_minutes=int(env.get("GATEWAY_SESSION_MINUTES") or 30),
            redirect_method=redirect_method,
            max_declines=int(env.get("GATEWAY_MAX_DECLINES") or 3),
            sandbox_settle_seconds=int(env.get("SANDBOX_SETTLE_SECONDS") or 86400),
            notify_timeout_seconds=float(env.get("GATEWAY_NOTIFY_TIMEOUT") or 10),
            notify_max_attempts=int(env.get("GATEWAY_NOTIFY_MAX_ATTEMPTS") or 12),
            notify_allow_private=_flag(env.get("GATEWAY_NOTIFY_ALLOW_PRIVATE"), environment != "production"),
            authorizenet_test_mode=_flag(env.get("AUTHORIZENET_TEST_MODE"), False),
            console_idle_minutes=int(env.get("GATEWAY_CONSOLE_IDLE_MINUTES") or 15),
            log_json=_flag(env.get("GATEWAY_LOG_JSON"), environment == "production"),
            metrics_token=env.get("GATEWAY_METRICS_TOKEN") or "",
        )
    except ValueError as exc:
        raise ConfigError(f"a numeric setting is not a number: {exc}") from exc
    values.update(overrides)
    if not values["database_url"]:
        values["database_url"] = _default_database_url()
    return Settings(**values)  # type: ignore[arg-type]
