"""How many pay submissions of one worker process compute at once; waiting on the network is free.

When a sale opens, a hundred shoppers press Pay within a second. Shared out among all of them at
once, the CPU finishes every purchase's database work at about the same moment, so they all wait
on the processor together, all wait on the store together, and the cores sit idle while they do;
the hosted page of a shopper arriving meanwhile is served last. Admitting a few submissions at a
time to their CPU work, and taking the slot back for as long as one waits on the processor or on
the store, serves them nearly in arrival order: while the first wait, the next compute. A
submission coming back from a wait goes before one that has not started, so money already moved
is recorded first.

Outside a slot (the delivery worker, the CLI, a page view) nothing here applies.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator


class Busy(Exception):
    """No slot came free within the request's time budget; nothing was started."""


class Gate:
    """Counted slots, where a holder coming back from a network wait is admitted before newcomers.

    A freed slot wakes one waiter, never all of them: with dozens waiting in a rush, waking every
    one at each release cost more CPU than the work they waited for."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self.free = slots
        self.returning = 0  # holders waiting to get their slot back after a network wait
        lock = threading.Lock()
        self.returner_turn = threading.Condition(lock)
        self.newcomer_turn = threading.Condition(lock)

    def enter(self, timeout: float | None) -> bool:
        """Take a slot as a newcomer; False if none came free within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.newcomer_turn:
            while self.free == 0 or self.returning:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._pass_on()  # a wake-up this waiter took as it gave up goes to the next one
                    return False
                self.newcomer_turn.wait(left)
            self.free -= 1
            self._pass_on()
            return True

    def come_back(self) -> None:
        """Take a slot again after a network wait: ahead of every newcomer, and without a deadline."""
        with self.returner_turn:
            self.returning += 1
            while self.free == 0:
                self.returner_turn.wait()
            self.returning -= 1
            self.free -= 1
            self._pass_on()

    def leave(self) -> None:
        with self.returner_turn:
            self.free += 1
            self._pass_on()

    def _pass_on(self) -> None:
        """A free slot goes to a returning holder if one waits, else to the next newcomer."""
        if self.free:
            (self.returner_turn if self.returning else self.newcomer_turn).notify()

    @contextmanager
    def slot(self, timeout: float | None) -> Iterator[None]:
        """Hold a slot for the block; raises Busy if none came free within ``timeout`` seconds."""
        if not self.enter(timeout):
            raise Busy()
        token = _held.set(self)
        try:
            yield
        finally:
            _held.reset(token)
            self.leave()


_held: ContextVar[Gate | None] = ContextVar("admission_slot", default=None)


@contextmanager
def network_wait() -> Iterator[None]:
    """Give the slot back (if this thread holds one) while the block waits on another server."""
    gate = _held.get()
    if gate is None:
        yield
        return
    gate.leave()
    token = _held.set(None)
    try:
        yield
    finally:
        _held.reset(token)
        gate.come_back()
