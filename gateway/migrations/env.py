"""Alembic environment: the database URL comes from the caller (gateway.migrate) or DATABASE_URL."""
from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gateway.config import load_settings
from gateway.db import make_engine
from gateway.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_settings().database_url


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    """SQLite's own way to rebuild a table (what batch migrations do) with rows other tables reference:
    foreign keys off outside the transaction, checked inside it before commit. Otherwise dropping the
    old copy counts as breaking every reference to it."""
    driver = connection.connection.driver_connection  # not through SQLAlchemy, which would begin a transaction
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(connection, on=False)
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
        )
        try:
            with context.begin_transaction():
                context.run_migrations()
                if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").first()):
                    raise RuntimeError(f"the migration broke a foreign key: {tuple(broken)}")
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, on=True)
    engine.dispose()


run_migrations_online()
