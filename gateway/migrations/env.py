"""Alembic environment: the database URL comes from the caller (gateway.migrate) or DATABASE_URL."""
from __future__ import annotations

from alembic import context

from gateway.config import load_settings
from gateway.db import make_engine
from gateway.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_settings().database_url


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
