"""The in-process rate-limit counters: no thread per hit, old entries forgotten, limits still exact."""
from __future__ import annotations

import threading

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from gateway.web import limit_storage
from gateway.web.limit_storage import SweptMemoryStorage, storage_uri


def test_memory_means_the_swept_storage_and_redis_is_left_alone():
    assert isinstance(storage_from_string(storage_uri("memory://")), SweptMemoryStorage)
    assert storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_thousand_hits_start_no_thread():
    """limits' own MemoryStorage started a thread 10 ms after a hit, again and again under traffic."""
    limiter = MovingWindowRateLimiter(SweptMemoryStorage())
    started = []
    original = threading.Thread.start
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(threading.Thread, "start", lambda self: started.append(self) or original(self))
        for address in range(1000):
            limiter.hit(parse("10 per minute"), "page", f"10.0.{address // 256}.{address % 256}")
    assert started == []


def test_the_limit_holds_exactly_without_a_sweep():
    limiter = MovingWindowRateLimiter(SweptMemoryStorage())
    allowed = [limiter.hit(parse("3 per minute"), "card", "10.0.0.1") for _ in range(5)]
    assert allowed == [True, True, True, False, False]


def test_entries_past_their_window_are_forgotten_by_a_later_hit(monkeypatch):
    clock = {"wall": 1_000_000.0, "monotonic": 100.0}
    monkeypatch.setattr("limits.storage.memory.time.time", lambda: clock["wall"])
    monkeypatch.setattr(limit_storage.time, "monotonic", lambda: clock["monotonic"])
    storage = SweptMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    for address in range(50):
        limiter.hit(parse("10 per second"), "page", f"10.0.0.{address}")
    assert len(storage.events) == 50
    clock["wall"] += 5
    clock["monotonic"] += limit_storage.SWEEP_SECONDS + 0.1
    limiter.hit(parse("10 per second"), "page", "10.0.1.1")
    assert list(storage.events) == [key for key in storage.events if "10.0.1.1" in key]
