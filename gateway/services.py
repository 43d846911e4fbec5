"""The long-lived parts one app (or one CLI command) works with, built once from the settings."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app

from .admission import Gate
from .config import ConfigError, Settings
from .db import Database
from .notifications.client import StoreClient
from .notifications.outbox import Outbox
from .processors import build_processor
from .processors.base import Processor
from .processors.timed import TimedProcessor
from .vault import Vault


@dataclass
class Services:
    settings: Settings
    db: Database
    vault: Vault
    processor: Processor | TimedProcessor
    store: StoreClient
    outbox: Outbox
    pay_slots: Gate

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        try:
            vault = Vault(settings.encryption_key, settings.secret_key, settings.secret_keys_previous)
        except ValueError as exc:
            raise ConfigError("GATEWAY_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") from exc
        db = Database(settings.database_url, settings.db_pool_size)
        store = StoreClient(
            timeout=settings.notify_timeout_seconds,
            require_https=settings.is_production,
            allow_private=settings.notify_allow_private,
        )
        # A delivery lease outlasts the store's answer twice over, so only a dead worker loses one.
        lease = timedelta(seconds=settings.notify_timeout_seconds * 2 + 10)
        return cls(
            settings=settings,
            db=db,
            vault=vault,
            processor=TimedProcessor(build_processor(settings, db)),
            store=store,
            outbox=Outbox(db, store, settings.private_key, lease=lease, max_attempts=settings.notify_max_attempts),
            pay_slots=Gate(settings.pay_slots),
        )


def current() -> Services:
    """The services of the app handling this request (or CLI command)."""
    services: Services = current_app.extensions["gateway"]
    return services
