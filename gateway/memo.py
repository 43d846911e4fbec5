"""A bounded, short-lived memory of values that cost a query or some formatting to make and rarely
change, shared by the threads of one worker process."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar
from weakref import WeakKeyDictionary

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Owner = TypeVar("Owner")


class Recent(Generic[K, V]):
    """At most ``size`` values, each kept ``seconds`` at most; the least recently used goes first.

    A value read before a :meth:`forget` finished may be stale, so :meth:`put` takes the
    :attr:`changes` seen before the read and keeps nothing if a change came in between.
    """

    def __init__(self, size: int, seconds: float) -> None:
        self.size = size
        self.seconds = seconds
        self.changes = 0
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= time.monotonic():
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: K, value: V, changes_before_read: int) -> None:
        with self._lock:
            if self.changes != changes_before_read:
                return
            self._entries[key] = (time.monotonic() + self.seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The remembered value, or a new one from ``make`` (remembered unless a change came meanwhile)."""
        known = self.get(key)
        if known is None:
            changes = self.changes
            known = make()
            self.put(key, known, changes)
        return known

    def forget(self, key: K) -> None:
        with self._lock:
            self.changes += 1
            self._entries.pop(key, None)


def memory_of(memories: WeakKeyDictionary[Owner, Recent[K, V]], owner: Owner, size: int, seconds: float) -> Recent[K, V]:
    """``owner``'s memory (one per database: an app, in tests several in turn), made at its first use;
    ``setdefault`` alone would build and drop a new one at every call, on every page view."""
    memory = memories.get(owner)
    if memory is None:
        memory = memories.setdefault(owner, Recent(size, seconds))
    return memory
