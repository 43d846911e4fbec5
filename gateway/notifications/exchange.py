"""What one delivery to a store saw, apart from the HTTP client that sees it: the outbox and the payments
records it without importing requests (a CLI command that only reads never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreAnswer:
    processed: bool
    errorcode: str
    errormessage: str


@dataclass(frozen=True)
class Exchange:
    """What one attempt saw, for the attempt log."""

    duration_ms: int
    http_status: int | None
    snippet: str
    answer: StoreAnswer | None
    error: str


class UnsafeDestination(ValueError):
    """The notification URL points somewhere a production gateway must not call."""
