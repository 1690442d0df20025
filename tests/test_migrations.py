"""The schema comes only from Alembic: empty → head on each engine, and no drift."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import dispatcher.models  # noqa: F401  (registers the tables)
from dispatcher import migrate

from .databases import rows, scalar

TABLES = {"api_key", "subscription", "event", "delivery", "attempt"}


def _tables(url: str, engine: str) -> set[str]:
    if engine == "sqlite":
        found = rows(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        found = rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in found}


def test_upgrade_from_empty_to_head_and_back(databases, engine):
    url = databases.empty()
    migrate.upgrade(url)
    assert TABLES | {"alembic_version"} <= _tables(url, engine)
    assert scalar(url, "SELECT version_num FROM alembic_version") == migrate.head()
    migrate.downgrade(url, "base")
    assert not TABLES & _tables(url, engine)
    migrate.upgrade(url)
    assert TABLES <= _tables(url, engine)


def test_models_and_migrations_do_not_drift(database_url):
    async def diff() -> list:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}),
                        SQLModel.metadata,
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
