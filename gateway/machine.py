"""A state machine over one table's state column: every move is one guarded UPDATE.

A machine lists the moves it allows. :meth:`Machine.move` refuses a move the table does not
list (a programming error) and otherwise performs a compare-and-set: the row changes only if it
is still in one of the expected states, so of two concurrent writers exactly one wins and the
loser learns it from the return value instead of overwriting the winner. The payments package
defines its machines in ``payments.states``; the outbox defines its own in ``notifications.outbox``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable

from sqlalchemy import bindparam, literal, update
from sqlalchemy.orm import Session

from . import prepared as driver


class IllegalMove(RuntimeError):
    """A move the state machine does not allow was attempted: a bug, never a client's fault."""


@dataclass(frozen=True)
class Machine:
    model: type[Any]
    column: str
    moves: dict[Enum, frozenset[Enum]]

    def move(self, session: Session, row_id: int, source: Enum | Iterable[Enum], target: Enum,
             *guards: Any, **values: Any) -> bool:
        """Compare-and-set ``row_id`` from ``source`` to ``target``; True if this caller won.

        Run on the session's connection, as plain SQL: the ORM's bulk-update bookkeeping cost a
        third of the statement's CPU and gave nothing here (the session is not synchronized)."""
        statement = self._compare_and_set(row_id, source, target, guards, values)
        session.flush()  # what the session would have flushed before the statement
        return session.connection().execute(statement).rowcount == 1

    def move_and_load(self, session: Session, row_id: int, source: Enum | Iterable[Enum], target: Enum,
                      *guards: Any, **values: Any) -> Any | None:
        """The same compare-and-set, answering the row as it stands after the move (one round trip
        instead of an UPDATE and a SELECT), or None if this caller lost."""
        statement = self._compare_and_set(row_id, source, target, guards, values).returning(self.model)
        return session.scalars(statement, execution_options={"populate_existing": True}).first()

    def prepare(self, source: Enum | Iterable[Enum], target: Enum, *guards: Any, returning: tuple[Any, ...] = (),
                **values: Any) -> Any:
        """A compare-and-set built once, for a path that runs it on every purchase: its row is the
        ``row_id`` parameter and whatever else varies is a ``bindparam``. Building the statement and
        its cache key anew each time cost a fifth of the statement's CPU; this statement keeps both, and a
        server worker compiles it before its first shopper (gateway/prepared.py's hot statements)."""
        statement = self._compare_and_set(bindparam("row_id"), source, target, guards, values)
        return driver.hot(statement.returning(*returning) if returning else statement)

    def run(self, session: Session, prepared: Any, row_id: int, **params: Any) -> driver.Ran:
        """Run a prepared move on ``row_id`` on the database driver (gateway/prepared.py: SQLAlchemy's
        execution cost twice the statement's CPU); its ``rowcount`` (or returned row) says whether this caller won."""
        session.flush()
        return driver.run(session.connection(), prepared, {"row_id": row_id, **params})

    def _compare_and_set(self, row_id: Any, source: Enum | Iterable[Enum], target: Enum,
                         guards: tuple[Any, ...], values: dict[str, Any]) -> Any:
        sources = (source,) if isinstance(source, Enum) else tuple(source)
        for state in sources:
            if target not in self.moves.get(state, frozenset()):
                raise IllegalMove(f"{self.model.__tablename__}: {state.value} -> {target.value} is not a legal move")
        column = getattr(self.model, self.column)
        return (
            update(self.model)
            # Each source an ordinary parameter: an expanding IN list is re-rendered at every execution.
            .where(self.model.id == row_id, column.in_([literal(state, column.type) for state in sources]), *guards)
            .values({self.column: target.value, **values})
            .execution_options(synchronize_session=False)
        )

    def is_final(self, state: str) -> bool:
        return not any(source.value == state and targets for source, targets in self.moves.items())
