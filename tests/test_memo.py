"""The per-worker memory behind the page's cached identities and order lines stays bounded and short-lived."""
from __future__ import annotations

from weakref import WeakKeyDictionary

from gateway import memo
from gateway.memo import Recent, memory_of


def test_the_least_recently_used_value_goes_first_when_full():
    recent: Recent[str, int] = Recent(size=2, seconds=60)
    recent.put("a", 1, recent.changes)
    recent.put("b", 2, recent.changes)
    assert recent.get("a") == 1  # "b" is now the least recently used
    recent.put("c", 3, recent.changes)
    assert (recent.get("a"), recent.get("b"), recent.get("c")) == (1, None, 3)


def test_a_value_is_forgotten_when_its_time_is_up(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(memo.time, "monotonic", lambda: now[0])
    recent: Recent[str, int] = Recent(size=2, seconds=30)
    recent.put("a", 1, recent.changes)
    now[0] += 29
    assert recent.get("a") == 1
    now[0] += 1
    assert recent.get("a") is None


def test_a_value_read_before_a_change_is_not_kept():
    recent: Recent[str, str] = Recent(size=2, seconds=60)
    before_read = recent.changes
    recent.forget("store")  # saved while the old value was being read
    recent.put("store", "old name", before_read)
    assert recent.get("store") is None


def test_get_or_make_makes_once_and_keeps_nothing_made_across_a_change():
    recent: Recent[str, int] = Recent(size=4, seconds=60)
    made: list[int] = []

    def make() -> int:
        made.append(1)
        return len(made)

    assert recent.get_or_make("a", make) == 1 and recent.get_or_make("a", make) == 1 and len(made) == 1

    def make_while_changed() -> int:
        recent.forget("b")  # a save committed while the value was being read
        return 99

    assert recent.get_or_make("b", make_while_changed) == 99
    assert recent.get("b") is None


def test_a_databases_memory_is_made_once_and_kept():
    class Owner:
        pass

    memories: WeakKeyDictionary[Owner, Recent[str, int]] = WeakKeyDictionary()
    first, second = Owner(), Owner()
    memory = memory_of(memories, first, 8, 60)
    memory.put("a", 1, memory.changes)
    assert memory_of(memories, first, 8, 60) is memory and memory_of(memories, first, 8, 60).get("a") == 1
    assert memory_of(memories, second, 8, 60) is not memory  # another database never sees it
    del first
    assert len(memories) == 1  # forgotten with its database
