"""Processor connectors behind one small interface (see base.py); chosen per deployment."""
from __future__ import annotations

from datetime import timedelta

from ..config import ConfigError, Settings
from ..db import Database
from .base import Processor


def build_processor(settings: Settings, db: Database) -> Processor:
    if settings.processor == "sandbox":
        from .sandbox import Latency, SandboxProcessor

        return SandboxProcessor(db, timedelta(seconds=settings.sandbox_settle_seconds),
                                Latency(settings.sandbox_latency_seconds, settings.sandbox_jitter_seconds))
    if settings.processor == "authorizenet":
        from .authorizenet import AuthorizeNetProcessor

        return AuthorizeNetProcessor(timeout=settings.processor_timeout_seconds,
                                     force_test_mode=settings.authorizenet_test_mode, url=settings.authorizenet_url)
    raise ConfigError(f"unknown GATEWAY_PROCESSOR {settings.processor!r} (known: sandbox, authorizenet)")
