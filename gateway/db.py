"""Engine and session handling shared by SQLite (embedded default) and PostgreSQL (production)."""
from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar, cast

from sqlalchemy import Select, create_engine, event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import Executable

from . import prepared
from .prepared import Prepared

DEFAULT_POOL_SIZE = 10
# PostgreSQL connections per process for lookups (Database.lookup): each holds one for a single
# round trip, so a few serve every thread of a worker.
LOOKUP_POOL_SIZE = 4
# A pooled connection left unused this long is checked with a round trip before it is handed out.
IDLE_PING_SECONDS = 1.0
# How long an SQLite writer waits for another's write lock. Transactions last milliseconds, so this is
# ample under load yet well inside a request's budget (GATEWAY_REQUEST_BUDGET, 25 s by default).
SQLITE_BUSY_SECONDS = 5.0
# An execution option: the block is one statement that only reads, so on SQLite it begins no transaction (see _begin).
READ_ONLY = "gateway_read_only"
T = TypeVar("T")


def make_engine(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    """``pool_size`` is the number of threads that may use the database at once (gateway/gunicorn_conf.py sets it)."""
    url = _driver_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin)
        return engine
    # Plans made for the values at hand: psycopg prepares a statement after five runs, and a generic
    # plan can use neither a partial index nor a LIKE prefix (the console's store search read every
    # payment once prepared: 190 ms instead of 6 at a million payments).
    return _postgres_engine(url, pool_size, connect_args={"options": "-c plan_cache_mode=force_custom_plan"})


def _driver_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _postgres_engine(url: str, pool_size: int, **options: Any) -> Engine:
    # Connections open only when that many threads are in a transaction at once; a thread never
    # waits for another's connection while the pool is as large as the worker's threads.
    engine = create_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=10, **options)
    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", _pinger(engine))
    return engine


def _note_idle(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    record.info["idle_since"] = time.monotonic()


def _pinger(engine: Engine):  # type: ignore[no-untyped-def]
    """Check a connection that sat idle (where a restarted server or a proxy's idle cut shows), not
    one handed back a moment ago: under load, a round trip at every checkout cost a tenth of a
    purchase's CPU. A connection that dies while busy fails its transaction, which rolls back
    whole, and SQLAlchemy then replaces every connection of the pool opened before it."""

    def ping_if_idle(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(str(error)) from error  # the pool retries with a new connection

    return ping_if_idle


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    cursor.close()


def _begin(connection) -> None:  # type: ignore[no-untyped-def]
    # One writer at a time: every SQLite transaction that may write takes the write lock up front, so
    # a read-then-write guard cannot be interleaved by another process (SQLite's form of a row lock).
    # A read (one statement, Database.read) begins nothing: a lone SELECT is its own transaction, and
    # under WAL it reads its snapshot beside the writer. A BEGIN was a twentieth of a page view.
    if not connection.get_execution_options().get(READ_ONLY, False):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL runs a lone statement as its own transaction; SQLite's stay in one
        # (there every transaction that may write takes the write lock up front, see _begin).
        sqlite = self.engine.dialect.name == "sqlite"
        autocommit = self.engine if sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._autocommit = autocommit
        self.dialect = self.engine.dialect.name
        self.lone_statements = sessionmaker(autocommit, expire_on_commit=False)
        readers = self.engine.execution_options(**{READ_ONLY: True}) if sqlite else autocommit
        self._readers = readers
        self.lone_reads = sessionmaker(readers, expire_on_commit=False)
        self._writers = _WriterQueue(_lock_file(self.engine)) if sqlite else None
        self._group = _GroupCommit(self) if sqlite else None
        # Lookups keep their prepared statements' generic plans (a lookup by a unique key has one good
        # plan, and planning it anew was half of PostgreSQL's work for it), outside any transaction.
        self._lookups = self.engine if sqlite else _postgres_engine(
            _driver_url(url), LOOKUP_POOL_SIZE, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._turn(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def one_statement(self) -> Iterator[Session]:
        """For a block of a single statement: without a BEGIN and a COMMIT around it, it costs one
        round trip to PostgreSQL instead of three. Never more than one statement that writes: on
        PostgreSQL each statement is committed on its own, at once."""
        with self._turn(), self.lone_statements() as session, session.begin():
            yield session

    def together(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` (a few Core statements, no ORM: its unit of work cost more than the statements)
        in a transaction that other threads' work of the same moment may share, each in its own
        savepoint: what raises in ``work`` is re-raised here with only its own writes undone. It
        returns once the shared commit is durable. On SQLite every commit is an fsync taken under
        the database's one write lock, so sharing it is what lets checkouts outrun one fsync each.
        On PostgreSQL ``work`` runs in a transaction of its own."""
        if self._group is None:
            with self.engine.begin() as connection:
                return work(connection)
        return self._group.run(work)

    @contextmanager
    def core_statement(self) -> Iterator[Connection]:
        """One_statement's Core form: on PostgreSQL one round trip, committed on its own."""
        with self._turn(), self._autocommit.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Session]:
        """For a block of one statement that only reads (a page view): on SQLite it takes no write
        lock, so it neither waits for a writer nor makes one wait; on PostgreSQL it is one_statement.
        Nothing is committed: the block ends with the session closed."""
        with self.lone_reads() as session:
            yield session

    def lookup(self, statement: Select[Any], values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of ``statement`` (a module's constant: see gateway/prepared.py), read outside any
        transaction: a lone SELECT, so on SQLite it takes no write lock (see _begin). Only for a read by a
        unique key: on PostgreSQL its connections keep a prepared statement's generic plan, which cannot
        use a partial index or a LIKE prefix."""
        connection = self._lookups.raw_connection()
        try:
            return self._prepared(statement).first(connection, values)
        finally:
            connection.close()

    def run(self, connection: Connection, statement: Executable, values: Mapping[str, Any]) -> int:
        """Run ``statement`` (a module's constant: see gateway/prepared.py) on a connection of a block of
        this database's; the rows it wrote."""
        return prepared.run(connection, statement, values).rowcount

    def row(self, statement: Select[Any], values: Mapping[str, Any]) -> Any:
        """The first row of ``statement`` (a module's constant), read as ``read`` does, with a plan made for
        the values at hand (unlike ``lookup``): a read whose best plan depends on them."""
        with self._readers.connect() as connection:
            return prepared.run(connection, statement, values).first()

    def _prepared(self, statement: Executable) -> Prepared:
        return prepared.prepared(statement, self.engine.dialect)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if self._writers is None:
            yield
            return
        with self._writers.turn():
            yield

    def dispose(self) -> None:
        self.engine.dispose()
        self._lookups.dispose()
        if self._writers is not None:
            self._writers.close()


class _Job(Generic[T]):
    """One thread's work in a shared commit: done once the commit is durable (or failed)."""

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.wake = threading.Event()  # done, or this job's thread now leads the next commit
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


class _GroupCommit:
    """SQLite's group commit: whoever finds no commit under way leads one, taking every job waiting at
    that moment into one transaction, each job in a savepoint; jobs that arrive meanwhile wait, and
    the first of them leads the next commit. Nobody is answered before the commit holding their
    writes is durable, and a commit that fails fails every job in it, none of them written."""

    MAX_JOBS = 64  # bounds how long one transaction holds the write lock

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._waiting: list[_Job[Any]] = []
        self._leading = False

    def run(self, work: Callable[[Connection], T]) -> T:
        job = _Job(work)
        with self._lock:
            self._waiting.append(job)
            lead = not self._leading
            self._leading = True
        if not lead:
            job.wake.wait()
        if not job.done:
            self._lead()
        return job.outcome()

    def _lead(self) -> None:
        with self._lock:
            jobs, self._waiting = self._waiting[:self.MAX_JOBS], self._waiting[self.MAX_JOBS:]
        try:
            self._commit(jobs)
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                self._leading = following is not None
            for job in jobs:
                job.done = True
                job.wake.set()
            if following is not None:
                following.wake.set()

    def _commit(self, jobs: list[_Job[Any]]) -> None:
        try:
            with self._db._turn(), self._db.engine.begin() as connection:
                if len(jobs) == 1:  # alone: what it raises rolls the whole transaction back, no savepoint needed
                    jobs[0].value = jobs[0].work(connection)
                    return
                for job in jobs:
                    savepoint = connection.begin_nested()
                    try:
                        job.value = job.work(connection)
                    except Exception as exc:  # noqa: BLE001 - handed to the job's own thread, which raises it
                        savepoint.rollback()
                        job.error = exc
                    else:
                        savepoint.commit()
        except Exception as exc:  # noqa: BLE001 - the commit failed: nothing of any job was written
            for job in jobs:
                job.error, job.value = job.error or exc, None
        except BaseException:  # the leader's thread is stopping: nothing was written, and nobody is told otherwise
            for job in jobs:
                job.error, job.value = RuntimeError("the shared commit was interrupted; nothing was written"), None
            raise


def _lock_file(engine: Engine) -> str | None:
    """Beside the database file, as SQLite's own -wal and -shm are; None for an in-memory database."""
    database = engine.url.database
    return f"{database}-writer" if database and database != ":memory:" else None


class _WriterQueue:
    """Whoever wants SQLite's write lock waits for it here: the threads of this process on a lock, and
    the processes (gunicorn's workers) on an flock of a file beside the database, each woken as the
    one before it finishes. SQLite's own busy handler retries by sleeping (1, 2, 5 ... 100 ms a
    time), so a writer of one worker waited behind a stream of the other's: p99 over a second under
    load. Waiting is bounded: after SQLITE_BUSY_SECONDS a writer goes on and lets SQLite refuse it."""

    def __init__(self, lock_path: str | None) -> None:
        self._lock = threading.RLock()  # a thread inside a transaction that opens another is let through
        self._depth = 0  # how deep the owning thread is; only the outermost turn takes the file lock
        self._path = lock_path
        self._file: tuple[int, int] | None = None  # (pid, descriptor): a forked worker opens its own

    @contextmanager
    def turn(self) -> Iterator[None]:
        deadline = time.monotonic() + SQLITE_BUSY_SECONDS
        acquired = self._lock.acquire(timeout=SQLITE_BUSY_SECONDS)
        locked = False
        try:
            if acquired:
                self._depth += 1
                locked = self._depth == 1 and self._lock_file(deadline)
            yield
        finally:
            if locked:
                fcntl.flock(self._descriptor(), fcntl.LOCK_UN)
            if acquired:
                self._depth -= 1
                self._lock.release()

    def _lock_file(self, deadline: float) -> bool:
        """Poll the file lock (flock cannot wait with a deadline): one thread per process polls."""
        if self._path is None:
            return False
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def close(self) -> None:
        if self._file is not None and self._file[0] == os.getpid():
            os.close(self._file[1])
        self._file = None

    def _descriptor(self) -> int:
        if self._file is None or self._file[0] != os.getpid():
            assert self._path is not None
            self._file = (os.getpid(), os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
        return self._file[1]
