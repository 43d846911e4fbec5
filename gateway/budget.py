"""The time budget of the request being served: outbound calls made for it never outlive it.

The web layer starts a budget for every request; a call made outside any request (the delivery
worker, the CLI) has no budget and keeps its own timeout.
"""
from __future__ import annotations

import time
from contextvars import ContextVar

MIN_CALL_SECONDS = 1.0  # below this an outbound call is not worth starting: leave it to the worker

_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def start(seconds: float) -> None:
    """Give the current request ``seconds`` in all."""
    _deadline.set(time.monotonic() + seconds)


def clear() -> None:
    _deadline.set(None)


def remaining() -> float | None:
    """Seconds left in the current request's budget; None outside a request."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def cap(timeout: float) -> float:
    """A call's timeout, shortened to what is left of the request's budget."""
    left = remaining()
    return timeout if left is None else min(timeout, left)


def allows_call() -> bool:
    """Whether there is time enough left for one more outbound call in this request."""
    left = remaining()
    return left is None or left >= MIN_CALL_SECONDS
