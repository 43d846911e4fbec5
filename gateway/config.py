"""Settings read from the environment, with development defaults that refuse to run in production."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, NoReturn, TypeVar
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

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
# What an operator can meet and a guess cannot: generated keys (`gateway keys new`) are 43 characters.
# Our own secret is generated (`gateway keys new`), so it can be long; the Private Key is issued by the
# 3dcart developer portal, whose length we do not choose: refuse only what no issued key would be.
MIN_KEY_LENGTH = {"GATEWAY_SECRET_KEY": 32, "GATEWAY_PRIVATE_KEY": 16}
MIN_DISTINCT_CHARACTERS = 8
MIN_METRICS_TOKEN_LENGTH = 16
MAX_TRUSTED_PROXIES = 10


T = TypeVar("T", int, float)


class ConfigError(RuntimeError):
    """The environment cannot run the gateway safely."""


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    private_key: str = DEV_PRIVATE_KEY
    # Keys accepted alongside the current one while a rotation is under way; never used to sign.
    private_keys_previous: tuple[str, ...] = ()
    secret_key: str = DEV_SECRET_KEY
    secret_keys_previous: tuple[str, ...] = ()
    encryption_key: str = DEV_ENCRYPTION_KEY  # comma-separated Fernet keys: the first seals, every one opens
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
    metrics_public: bool = False  # production serves /metrics without a token only when told so
    # Retention (gateway.payments.retention): how long history is kept, and how much one worker round deletes.
    retention_replay_days: int = 7
    retention_history_days: int = 400
    retention_console_hours: int = 72
    retention_risk_days: int = 7  # the risk step reads its signals for an hour; a week is kept for operators
    retention_batch_rows: int = 500
    retention_batches_per_round: int = 4

    @property
    def is_production(self) -> bool:
        """Anything but development runs with production's rules: a typo never loosens them."""
        return self.environment != DEVELOPMENT

    @property
    def private_keys(self) -> tuple[str, ...]:
        """Every Private Key a request may be signed with: the current one first."""
        return (self.private_key, *self.private_keys_previous)

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """Every secret key a token or fingerprint may carry: the current one first."""
        return (self.secret_key, *self.secret_keys_previous)

    @property
    def encryption_keys(self) -> tuple[str, ...]:
        return _split(self.encryption_key)

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


def _split(value: str | None) -> tuple[str, ...]:
    """A comma-separated list of keys, blanks dropped."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _number(env: Mapping[str, str], variable: str, default: str, kind: Callable[[str], T]) -> T:
    """A numeric setting, or a refusal naming it (never a bare ValueError)."""
    text = env.get(variable) or default
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{variable} must be a number, got {text!r}") from None


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


RETENTION_SETTINGS = {
    name: Settings.__dataclass_fields__[name].default
    for name in ("retention_replay_days", "retention_history_days", "retention_console_hours",
                 "retention_risk_days", "retention_batch_rows", "retention_batches_per_round")
}


def _check_retention(settings: Settings) -> None:
    """A checkout's replay record must outlive its payment page, or an exact retry would be refused."""
    if settings.retention_replay_days * 24 * 60 <= settings.session_minutes:
        raise ConfigError("GATEWAY_RETENTION_REPLAY_DAYS must be longer than GATEWAY_SESSION_MINUTES")


_POSITIVE = {
    "session_minutes": "GATEWAY_SESSION_MINUTES",
    "max_declines": "GATEWAY_MAX_DECLINES",
    "notify_max_attempts": "GATEWAY_NOTIFY_MAX_ATTEMPTS",
    "console_idle_minutes": "GATEWAY_CONSOLE_IDLE_MINUTES",
    **{name: f"GATEWAY_{name.upper()}" for name in RETENTION_SETTINGS},
}


def _check_values(settings: Settings) -> None:
    """Refuse values no environment can run on: each message names the setting to fix."""
    for name, variable in _POSITIVE.items():
        if getattr(settings, name) < 1:
            raise ConfigError(f"{variable} must be a positive whole number, got {getattr(settings, name)}")
    if not 0 <= settings.trusted_proxies <= MAX_TRUSTED_PROXIES:
        raise ConfigError(f"GATEWAY_TRUSTED_PROXIES must be between 0 and {MAX_TRUSTED_PROXIES}, "
                          f"got {settings.trusted_proxies}")
    for name, default in _LIMITS.items():
        if getattr(settings, name) != default:  # the defaults parse (a test says so): only what was set is read
            _check_limit(f"GATEWAY_{name.upper()}", getattr(settings, name))
    for position, key in enumerate(settings.encryption_keys or ("",), start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            raise ConfigError(f"GATEWAY_ENCRYPTION_KEY: key {position} is not a Fernet key "
                              "(32 url-safe base64-encoded bytes; `gateway keys new` prints one)") from None
    if settings.public_url:
        _check_public_url(settings.public_url, https=settings.is_production)


def _check_limit(variable: str, text: str) -> None:
    """A limit that does not parse would be skipped at request time: refuse it at start instead."""
    from limits import parse_many  # only for a limit set in the environment: a one-off command rarely pays for it

    try:
        items = parse_many(text)
    except ValueError:
        raise ConfigError(f"{variable} is not a rate limit such as '10 per minute; 30 per hour': {text!r}") from None
    if any(item.amount < 1 for item in items):
        raise ConfigError(f"{variable} allows nothing at all: {text!r}")


def _check_public_url(url: str, https: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment or not _port_ok(url):
        raise ConfigError(f"GATEWAY_PUBLIC_URL must be a base URL such as https://pay.example.com, got {url!r}")
    if https and parts.scheme != "https":
        raise ConfigError(f"GATEWAY_PUBLIC_URL must use https outside development, got {url!r}")


def _port_ok(url: str) -> bool:
    """urlsplit reads a port only when asked, and refuses one that is not a number then."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return False
    return port is None or port > 0


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment; outside development every secret must be given explicitly."""
    env = os.environ if environ is None else environ
    environment = (env.get("GATEWAY_ENV") or DEVELOPMENT).strip().lower()
    if environment != DEVELOPMENT:
        _refuse_missing_in_production(env, environment)
    redirect_method = env.get("GATEWAY_REDIRECT_METHOD", "GET").strip().upper()
    if redirect_method not in {"GET", "POST"}:
        raise ConfigError("GATEWAY_REDIRECT_METHOD must be GET or POST")
    unconfirmed_action = (env.get("GATEWAY_UNCONFIRMED_CHARGE_ACTION") or "reverse").strip().lower()
    if unconfirmed_action not in {"reverse", "keep"}:
        raise ConfigError("GATEWAY_UNCONFIRMED_CHARGE_ACTION must be reverse or keep")
    values = dict(
        environment=environment,
        private_key=env.get("GATEWAY_PRIVATE_KEY") or DEV_PRIVATE_KEY,
        private_keys_previous=_split(env.get("GATEWAY_PRIVATE_KEY_PREVIOUS")),
        secret_key=env.get("GATEWAY_SECRET_KEY") or DEV_SECRET_KEY,
        secret_keys_previous=_split(env.get("GATEWAY_SECRET_KEY_PREVIOUS")),
        encryption_key=env.get("GATEWAY_ENCRYPTION_KEY") or DEV_ENCRYPTION_KEY,
        database_url=env.get("DATABASE_URL") or "",
        public_url=(env.get("GATEWAY_PUBLIC_URL") or "").rstrip("/"),
        processor=(env.get("GATEWAY_PROCESSOR") or "sandbox").strip().lower(),
        session_minutes=_number(env, "GATEWAY_SESSION_MINUTES", "30", int),
        redirect_method=redirect_method,
        max_declines=_number(env, "GATEWAY_MAX_DECLINES", "3", int),
        sandbox_settle_seconds=_number(env, "SANDBOX_SETTLE_SECONDS", "86400", int),
        notify_timeout_seconds=_number(env, "GATEWAY_NOTIFY_TIMEOUT", "10", float),
        notify_max_attempts=_number(env, "GATEWAY_NOTIFY_MAX_ATTEMPTS", "12", int),
        notify_allow_private=_flag(env.get("GATEWAY_NOTIFY_ALLOW_PRIVATE"), environment == DEVELOPMENT),
        authorizenet_test_mode=_flag(env.get("AUTHORIZENET_TEST_MODE"), False),
        authorizenet_url=(env.get("AUTHORIZENET_URL") or "").strip(),
        sandbox_in_production=env.get("GATEWAY_SANDBOX_IN_PRODUCTION") == SANDBOX_IN_PRODUCTION_OPT_IN,
        ratelimit_storage=env.get("GATEWAY_RATELIMIT_STORAGE") or "memory://",
        trusted_proxies=_number(env, "GATEWAY_TRUSTED_PROXIES", "0", int),
        **{name: env.get(f"GATEWAY_{name.upper()}") or default for name, default in _LIMITS.items()},
        request_budget_seconds=_number(env, "GATEWAY_REQUEST_BUDGET", "25", float),
        processor_timeout_seconds=_number(env, "GATEWAY_PROCESSOR_TIMEOUT", "10", float),
        sandbox_latency_seconds=_number(env, "SANDBOX_LATENCY", "0", float),
        sandbox_jitter_seconds=_number(env, "SANDBOX_JITTER", "0", float),
        db_pool_size=_number(env, "GATEWAY_DB_POOL_SIZE", "10", int),
        pay_slots=_number(env, "GATEWAY_PAY_SLOTS", "1", int),
        unconfirmed_charge_hours=_number(env, "GATEWAY_UNCONFIRMED_CHARGE_HOURS", "72", float),
        unconfirmed_charge_action=unconfirmed_action,
        console_idle_minutes=_number(env, "GATEWAY_CONSOLE_IDLE_MINUTES", "15", int),
        log_json=_flag(env.get("GATEWAY_LOG_JSON"), environment != DEVELOPMENT),
        metrics_token=env.get("GATEWAY_METRICS_TOKEN") or "",
        metrics_public=_flag(env.get("GATEWAY_METRICS_PUBLIC"), False),
        **{name: _number(env, f"GATEWAY_{name.upper()}", str(default), int) for name, default in RETENTION_SETTINGS.items()},
    )
    values.update(overrides)
    _check_runtime(values)
    if not values["database_url"]:
        values["database_url"] = _default_database_url()
    settings = Settings(**values)  # type: ignore[arg-type]
    _check_values(settings)
    _check_retention(settings)
    if settings.is_production:
        _refuse_weak_production(settings)
    return settings


_LIMITS = {
    name: Settings.__dataclass_fields__[name].default
    for name in ("limit_card_per_address", "limit_card_per_store", "limit_page_per_address", "limit_unknown_token_per_address")
}


_WHERE_FROM = {
    "GATEWAY_PRIVATE_KEY": "as the 3dcart developer portal issues it",
    "GATEWAY_SECRET_KEY": "as `gateway keys new` prints",
}
# The development values contain these too, so they are refused with every other guessable key.
_WEAK_WORDS = ("secret", "password", "changeme", "change-me", "private", "example", "0123456789", "abcdef")


def _refuse_missing_in_production(env: Mapping[str, str], environment: str) -> None:
    missing = [name for name in REQUIRED_IN_PRODUCTION if not env.get(name)]
    if missing:
        raise ConfigError(f"refusing to start in {environment}: set " + ", ".join(missing))
    if env["GATEWAY_PROCESSOR"].strip().lower() == "sandbox" and (
        env.get("GATEWAY_SANDBOX_IN_PRODUCTION") != SANDBOX_IN_PRODUCTION_OPT_IN
    ):
        raise ConfigError(
            f"refusing to start in {environment} on the sandbox processor, which approves cards without charging "
            f"anyone; name a real processor, or set GATEWAY_SANDBOX_IN_PRODUCTION={SANDBOX_IN_PRODUCTION_OPT_IN}"
        )


def _refuse_weak_production(settings: Settings) -> None:
    """Outside development every key must be strong and distinct, and every shared resource really shared."""
    refuse = f"refusing to start in {settings.environment}:"
    _refuse_weak_keys(settings, refuse)
    if settings.database_url.startswith("sqlite"):
        raise ConfigError(f"{refuse} DATABASE_URL is SQLite; production needs PostgreSQL (postgresql://...)")
    if settings.ratelimit_storage.startswith("memory"):
        raise ConfigError(f"{refuse} GATEWAY_RATELIMIT_STORAGE is memory://, which each worker counts on its own;"
                          " use redis://host:6379/N")
    if not settings.metrics_public and len(settings.metrics_token) < MIN_METRICS_TOKEN_LENGTH:
        raise ConfigError(f"{refuse} GATEWAY_METRICS_TOKEN must be set (at least {MIN_METRICS_TOKEN_LENGTH} characters)"
                          ", or GATEWAY_METRICS_PUBLIC=yes to serve /metrics to anyone")


def _refuse_weak_keys(settings: Settings, refuse: str) -> None:
    for variable, keys in (("GATEWAY_PRIVATE_KEY", settings.private_keys), ("GATEWAY_SECRET_KEY", settings.secret_keys)):
        for position, key in enumerate(keys):
            if _is_weak(key, MIN_KEY_LENGTH[variable]):
                name = variable if position == 0 else f"{variable}_PREVIOUS"
                raise ConfigError(f"{refuse} {name} is weak: at least {MIN_KEY_LENGTH[variable]} random characters, "
                                  + _WHERE_FROM[variable])
    if DEV_ENCRYPTION_KEY in settings.encryption_keys:
        raise ConfigError(f"{refuse} GATEWAY_ENCRYPTION_KEY holds the public development value")
    if set(settings.private_keys) & set(settings.secret_keys):
        raise ConfigError(f"{refuse} GATEWAY_SECRET_KEY must differ from GATEWAY_PRIVATE_KEY")


def _is_weak(key: str, min_length: int) -> bool:
    lowered = key.lower()
    return (len(key) < min_length or len(set(key)) < MIN_DISTINCT_CHARACTERS
            or any(word in lowered for word in _WEAK_WORDS))


def settings_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings, or one line naming what to fix and exit status 2: an operator fixes the environment,
    and a traceback would only hide the line that says how."""
    try:
        return load_settings(environ)
    except ConfigError as exc:
        exit_refused(exc)


def exit_refused(error: ConfigError) -> NoReturn:
    print(f"gateway: {error}", file=sys.stderr)
    raise SystemExit(2)
