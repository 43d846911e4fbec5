"""What every table module shares: the declarative base, UTC timestamps, and enum columns the database checks."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Iterable, Optional

from sqlalchemy import ColumnElement, DateTime, literal, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


def checked_enum(enum: type[Enum], name: str, length: int) -> SAEnum:
    """A VARCHAR the database itself limits to the enum's values, with a CHECK named ``name``.

    Not a native PostgreSQL ENUM, so both engines hold the same column and adding a value is a
    constraint change. The values (not the member names) are stored, so rows written with the plain
    strings (Core inserts, older code) and rows written with members are the same."""
    return SAEnum(
        enum,
        native_enum=False,
        create_constraint=True,
        values_callable=lambda members: [member.value for member in members],
        name=name,
        length=length,
    )


def partial(where: str) -> dict[str, Any]:
    """The keyword arguments of an ``Index`` holding only the rows ``where`` selects, on both engines."""
    return {"postgresql_where": text(where), "sqlite_where": text(where)}


def one_of(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (...)`` with each value an ordinary bound parameter. A plain ``in_`` list is expanded
    at every execution, re-rendering the statement's SQL (80 us, a twentieth of a checkout)."""
    return column.in_([literal(value, column.type) for value in values])  # type: ignore[no-any-return]
