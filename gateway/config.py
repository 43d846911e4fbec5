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

DEVELOPMENT = "development"
REQUIRED_IN_PRODUCTION = (
    "GATEWAY_PRIVATE_KEY",
    "GATEWAY_SECRET_KEY",
    "GATEWAY_ENCRYPTION_KEY",
    "DATABASE_URL",
    "GATEWAY_PUBLIC_URL",
    "GATEWAY_PROCESSOR",
    "GATEWAY_RATELIMIT_STORAGE",
)
# The sandbox approves every valid card number and charges nobody: outside development it runs
# only when this exact value is set, and every start-up says so.
SANDBOX_IN_PRODUCTION_OPT_IN = "yes-approve-cards-without-charging"


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
    authorizenet_url: str = ""  # a stand-in for both of Authorize.Net's endpoints (tests, staging); empty: the real ones
    sandbox_in_production: bool = False
    ratelimit_storage: str = "memory://"
    trusted_proxies: int = 0
    limit_card_per_address: str = "10 per minute; 30 per hour"
    limit_card_per_store: str = "600 per minute"
    limit_page_per_address: str = "120 per minute"
    limit_unknown_token_per_address: str = "20 per minute"
    request_budget_seconds: float = 25.0
    processor_timeout_seconds: float = 10.0
    sandbox_latency_seconds: float = 0.0
    sandbox_jitter_seconds: float = 0.0
    db_pool_size: int = 10
    pay_slots: int = 1
    # An approved charge whose store notification went dead: after this many hours, reverse or keep it.
    unconfirmed_charge_hours: float = 72.0
    unconfirmed_charge_action: str = "reverse"
    console_idle_minutes: int = 15
    log_json: bool = False
    metrics_token: str = ""

    @property
    def is_production(self) -> bool:
        """Anything but development runs with production's rules: a typo never loosens them."""
        return self.environment != DEVELOPMENT

    def describe(self) -> str:
        """One start-up line saying what runs, without any secret."""
        keys = "development keys" if self.private_key == DEV_PRIVATE_KEY else "configured keys"
        database = self.database_url.split("://", 1)[0]
        return (f"environment={self.environment} processor={self.processor} database={database} "
                f"ratelimit-storage={self.ratelimit_storage.split('://', 1)[0]} {keys}")


def _default_database_url() -> str:
    instance = Path.cwd() / "instance"
    instance.mkdir(exist_ok=True)
    return f"sqlite:///{instance / 'gateway.sqlite3'}"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _check_runtime(values: dict[str, object]) -> None:
    """Refuse time settings that would let a shopper request outlive its own budget."""
    budget, processor = values["request_budget_seconds"], values["processor_timeout_seconds"]
    if not 0 < processor < budget:  # type: ignore[operator]
        raise ConfigError("GATEWAY_PROCESSOR_TIMEOUT must be positive and shorter than GATEWAY_REQUEST_BUDGET")
    if values["sandbox_latency_seconds"] < 0 or values["sandbox_jitter_seconds"] < 0:  # type: ignore[operator]
        raise ConfigError("SANDBOX_LATENCY and SANDBOX_JITTER cannot be negative")
    if values["db_pool_size"] < 1:  # type: ignore[operator]
        raise ConfigError("GATEWAY_DB_POOL_SIZE must be at least 1")
    if values["pay_slots"] < 1:  # type: ignore[operator]
        raise ConfigError("GATEWAY_PAY_SLOTS must be at least 1")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment; outside development every secret must be given explicitly."""
    env = os.environ if environ is None else environ
    environment = (env.get("GATEWAY_ENV") or DEVELOPMENT).strip().lower()
    if environment != DEVELOPMENT:
        _refuse_unsafe_production(env, environment)
    redirect_method = env.get("GATEWAY_REDIRECT_METHOD", "GET").strip().upper()
    if redirect_method not in {"GET", "POST"}:
        raise ConfigError("GATEWAY_REDIRECT_METHOD must be GET or POST")
    unconfirmed_action = (env.get("GATEWAY_UNCONFIRMED_CHARGE_ACTION") or "reverse").strip().lower()
    if unconfirmed_action not in {"reverse", "keep"}:
        raise ConfigError("GATEWAY_UNCONFIRMED_CHARGE_ACTION must be reverse or keep")
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
            notify_allow_private=_flag(env.get("GATEWAY_NOTIFY_ALLOW_PRIVATE"), environment == DEVELOPMENT),
            authorizenet_test_mode=_flag(env.get("AUTHORIZENET_TEST_MODE"), False),
            authorizenet_url=(env.get("AUTHORIZENET_URL") or "").strip(),
            sandbox_in_production=env.get("GATEWAY_SANDBOX_IN_PRODUCTION") == SANDBOX_IN_PRODUCTION_OPT_IN,
            ratelimit_storage=env.get("GATEWAY_RATELIMIT_STORAGE") or "memory://",
            trusted_proxies=int(env.get("GATEWAY_TRUSTED_PROXIES") or 0),
            **{name: env.get(f"GATEWAY_{name.upper()}") or default for name, default in _LIMITS.items()},
            request_budget_seconds=float(env.get("GATEWAY_REQUEST_BUDGET") or 25),
            processor_timeout_seconds=float(env.get("GATEWAY_PROCESSOR_TIMEOUT") or 10),
            sandbox_latency_seconds=float(env.get("SANDBOX_LATENCY") or 0),
            sandbox_jitter_seconds=float(env.get("SANDBOX_JITTER") or 0),
            db_pool_size=int(env.get("GATEWAY_DB_POOL_SIZE") or 10),
            pay_slots=int(env.get("GATEWAY_PAY_SLOTS") or 1),
            unconfirmed_charge_hours=float(env.get("GATEWAY_UNCONFIRMED_CHARGE_HOURS") or 72),
            unconfirmed_charge_action=unconfirmed_action,
            console_idle_minutes=int(env.get("GATEWAY_CONSOLE_IDLE_MINUTES") or 15),
            log_json=_flag(env.get("GATEWAY_LOG_JSON"), environment != DEVELOPMENT),
            metrics_token=env.get("GATEWAY_METRICS_TOKEN") or "",
        )
    except ValueError as exc:
        raise ConfigError(f"a numeric setting is not a number: {exc}") from exc
    values.update(overrides)
    _check_runtime(values)
    if not values["database_url"]:
        values["database_url"] = _default_database_url()
    return Settings(**values)  # type: ignore[arg-type]


_LIMITS = {
    name: Settings.__dataclass_fields__[name].default
    for name in ("limit_card_per_address", "limit_card_per_store", "limit_page_per_address", "limit_unknown_token_per_address")
}


_DEVELOPMENT_SECRETS = {
    "GATEWAY_PRIVATE_KEY": DEV_PRIVATE_KEY,
    "GATEWAY_SECRET_KEY": DEV_SECRET_KEY,
    "GATEWAY_ENCRYPTION_KEY": DEV_ENCRYPTION_KEY,
}


def _refuse_unsafe_production(env: Mapping[str, str], environment: str) -> None:
    missing = [name for name in REQUIRED_IN_PRODUCTION if not env.get(name)]
    if missing:
        raise ConfigError(f"refusing to start in {environment}: set " + ", ".join(missing))
    published = [name for name, value in _DEVELOPMENT_SECRETS.items() if env[name] == value]
    if published:
        raise ConfigError(f"refusing to start in {environment}: {', '.join(published)} is the public development value")
    if env["GATEWAY_PROCESSOR"].strip().lower() == "sandbox" and (
        env.get("GATEWAY_SANDBOX_IN_PRODUCTION") != SANDBOX_IN_PRODUCTION_OPT_IN
    ):
        raise ConfigError(
            f"refusing to start in {environment} on the sandbox processor, which approves cards without charging "
            f"anyone; name a real processor, or set GATEWAY_SANDBOX_IN_PRODUCTION={SANDBOX_IN_PRODUCTION_OPT_IN}"
        )
