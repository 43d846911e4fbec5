"""Database.together: on SQLite the checkouts of the same moment share one commit (one fsync under the
write lock), each in its own savepoint; nobody is answered before the commit holding their writes is
durable, and one job's failure undoes only its own writes."""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.db import Database


@pytest.fixture
def database(clean_database: str) -> Iterator[Database]:
    database = Database(clean_database, pool_size=4)
    with database.transaction() as session:
        session.execute(text("CREATE TABLE together_rows (n INTEGER PRIMARY KEY)"))
    yield database
    with database.transaction() as session:
        session.execute(text("DROP TABLE together_rows"))
    database.dispose()


def rows(database: Database) -> list[int]:
    with database.transaction() as session:
        return list(session.scalars(text("SELECT n FROM together_rows ORDER BY n")))


def insert(n: int) -> Callable[[Connection], int]:
    def work(connection: Connection) -> int:
        connection.execute(text("INSERT INTO together_rows (n) VALUES (:n)"), {"n": n})
        return n

    return work


def while_a_commit_is_under_way(database: Database, works: list[Callable[[Connection], Any]],
                                tolerate: type[BaseException] = Exception) -> list[Any]:
    """Start ``works`` in threads while a first job holds the commit open, so they queue up behind it and
    are taken into the next commit together; what each call returned or raised."""
    inside, release = threading.Event(), threading.Event()

    def first(connection: Connection) -> int:
        connection.execute(text("INSERT INTO together_rows (n) VALUES (0)"))
        inside.set()
        assert release.wait(5)
        return 0

    results: dict[int, Any] = {}

    def call(index: int, work: Callable[[Connection], Any]) -> None:
        try:
            results[index] = database.together(work)
        except (Exception, tolerate) as exc:  # noqa: BLE001 - what the caller would have seen
            results[index] = exc

    leader = threading.Thread(target=call, args=(-1, first))
    leader.start()
    assert inside.wait(5)
    threads = [threading.Thread(target=call, args=(index, work)) for index, work in enumerate(works)]
    for thread in threads:
        thread.start()
    if database.dialect == "sqlite":  # they queue behind the first job's commit; elsewhere they commit alone
        for _ in range(500):
            if len(database._group._waiting) == len(works):
                break
            threading.Event().wait(0.01)
    release.set()
    for thread in [leader, *threads]:
        thread.join(10)
    assert results[-1] == 0
    return [results[index] for index in range(len(works))]


def commits(database: Database) -> list[int]:
    counted: list[int] = []
    event.listen(database.engine, "commit", lambda _connection: counted.append(1))
    return counted


def test_every_job_is_written_and_gets_its_own_answer(database):
    assert while_a_commit_is_under_way(database, [insert(n) for n in range(1, 9)]) == list(range(1, 9))
    assert rows(database) == list(range(9))


def test_jobs_waiting_together_share_one_commit(database):
    if database.dialect != "sqlite":
        pytest.skip("on PostgreSQL each job commits on its own")
    counted = commits(database)
    while_a_commit_is_under_way(database, [insert(n) for n in range(1, 9)])
    assert len(counted) == 2  # the first job's, then one for the eight that waited behind it
    assert rows(database) == list(range(9))


def test_a_failing_job_undoes_only_its_own_writes(database):
    if database.dialect != "sqlite":
        pytest.skip("jobs share a commit on SQLite only (elsewhere these race each other for key 1)")
    def half_then_fail(connection: Connection) -> None:
        connection.execute(text("INSERT INTO together_rows (n) VALUES (50)"))
        raise ValueError("refused")

    def duplicate(connection: Connection) -> None:
        connection.execute(text("INSERT INTO together_rows (n) VALUES (51)"))
        connection.execute(text("INSERT INTO together_rows (n) VALUES (1)"))  # job 1's key: fails

    answers = while_a_commit_is_under_way(database, [insert(1), half_then_fail, insert(2), duplicate, insert(3)])
    assert answers[0] == 1 and answers[2] == 2 and answers[4] == 3
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "refused"
    assert isinstance(answers[3], IntegrityError)
    assert rows(database) == [0, 1, 2, 3]  # neither 50 nor 51


def test_a_job_alone_that_fails_leaves_nothing(database):
    def fail(connection: Connection) -> None:
        connection.execute(text("INSERT INTO together_rows (n) VALUES (7)"))
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        database.together(fail)
    assert rows(database) == []


def test_a_commit_that_fails_fails_every_job_in_it_and_writes_none(database, monkeypatch):
    if database.dialect != "sqlite":
        pytest.skip("jobs share a commit on SQLite only")

    def refuse_commit(_connection: Any) -> None:
        refuse_commit.calls += 1  # type: ignore[attr-defined]
        if refuse_commit.calls == 2:  # type: ignore[attr-defined]
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    refuse_commit.calls = 0  # type: ignore[attr-defined]
    event.listen(database.engine, "commit", refuse_commit)
    answers = while_a_commit_is_under_way(database, [insert(n) for n in range(1, 5)])
    assert all(isinstance(answer, OperationalError) for answer in answers)
    assert rows(database) == [0]  # the first commit's row only


def test_a_leader_stopped_mid_commit_leaves_every_job_failed_and_nothing_written(database):
    """A BaseException (the leader's thread being stopped) rolls the whole commit back: no job may be
    answered as written."""
    if database.dialect != "sqlite":
        pytest.skip("jobs share a commit on SQLite only")

    class Stopped(BaseException):
        pass

    def stop(connection: Connection) -> None:
        raise Stopped

    answers = while_a_commit_is_under_way(database, [insert(1), stop, insert(2)], tolerate=Stopped)
    assert all(isinstance(answer, (RuntimeError, Stopped)) for answer in answers)
    assert rows(database) == [0]
