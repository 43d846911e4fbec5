"""The long-lived parts one app (or one CLI command) works with, built once from the settings.

The processor, the store client and the outbox are built on first use: a CLI command that only reads the
database never imports the HTTP client, the schemas or the metrics. The web app and the worker build them
all at start (`build_parts`), so a bad setting refuses to start there.
"""
from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from .admission import Gate
from .config import ConfigError, Settings
from .db import Database
from .vault import Vault

if TYPE_CHECKING:
    from .notifications.client import StoreClient
    from .notifications.outbox import Outbox
    from .processors.base import Processor
    from .processors.timed import TimedProcessor


class Services:
    def __init__(self, settings: Settings, db: Database, vault: Vault, pay_slots: Gate) -> None:
        self.settings = settings
        self.db = db
        self.vault = vault
        self.pay_slots = pay_slots

    @classmethod
    def build(cls, settings: Settings, *, complete: bool = False) -> "Services":
        try:
            vault = Vault(settings.encryption_key, settings.secret_key, settings.secret_keys_previous)
        except ValueError as exc:
            raise ConfigError("GATEWAY_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") from exc
        services = cls(settings, Database(settings.database_url, settings.db_pool_size), vault, Gate(settings.pay_slots))
        if complete:
            services.build_parts()
        return services

    def build_parts(self) -> None:
        """Build what is otherwise built on first use: a server's start, where a bad setting must refuse it."""
        _ = (self.processor, self.outbox)

    @cached_property
    def processor(self) -> Processor | TimedProcessor:
        from .processors import build_processor
        from .processors.timed import TimedProcessor

        return TimedProcessor(build_processor(self.settings, self.db))

    @cached_property
    def store(self) -> StoreClient:
        from .notifications.client import StoreClient

        return StoreClient(timeout=self.settings.notify_timeout_seconds, require_https=self.settings.is_production,
                           allow_private=self.settings.notify_allow_private)

    @cached_property
    def outbox(self) -> Outbox:
        from .notifications.outbox import Outbox

        # A delivery lease outlasts the store's answer twice over, so only a dead worker loses one.
        lease = timedelta(seconds=self.settings.notify_timeout_seconds * 2 + 10)
        return Outbox(self.db, self.store, self.settings.private_key, lease=lease,
                      max_attempts=self.settings.notify_max_attempts)


def current() -> Services:
    """The services of the app handling this request (or CLI command)."""
    from flask import current_app

    services: Services = current_app.extensions["gateway"]
    return services
