"""What every role of the store shares: the database, the secret box that seals signing
secrets at rest, the cache of live API keys, and one page of a list."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..database import Database
from ..sealing import SecretBox, parse_keys
from .rows import KeyRow, Page, row_dict

MAX_KNOWN_KEYS = 10_000  # authenticate(cached=True) forgets them all past this


class StoreBase:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine
        self.writer = db.writer
        self.wakeup = db.wakeup
        self.box = SecretBox(parse_keys(db.settings.secret_key))
        # key_hash -> the row of a key seen live (authenticate(cached=True)).
        self._known_keys: dict[str, KeyRow] = {}

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # Signing secrets are sealed in the database and open in memory.

    def _sealed(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e | {"secret": self.box.seal(e["secret"])} for e in entries]

    def _opened_secrets(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e | {"secret": self.box.open(e["secret"])} for e in entries]

    def _opened(self, row: dict[str, Any]) -> dict[str, Any]:
        return row | {"secrets": self._opened_secrets(row["secrets"])}

    # The key cache: keys seen live, forgotten when this process sees them deleted.

    def _remember_key(self, digest: str, row: KeyRow) -> None:
        if len(self._known_keys) >= MAX_KNOWN_KEYS:
            self._known_keys.clear()
        self._known_keys[digest] = row

    def _forget_key(self, key_id: str) -> None:
        for digest, known in list(self._known_keys.items()):
            if known["id"] == key_id:
                del self._known_keys[digest]

    async def _page(
        self, stmt: sa.Select[Any], id_col: sa.ColumnElement[str], cursor: str | None,
        limit: int, order: str,
    ) -> Page:
        if cursor is not None:
            stmt = stmt.where(id_col > cursor if order == "asc" else id_col < cursor)
        return await self._ordered_page(
            stmt.order_by(id_col.asc() if order == "asc" else id_col.desc()), limit)

    async def _page_by_creation(
        self, stmt: sa.Select[Any], created: sa.ColumnElement[Any], key: sa.ColumnElement[str],
        cursor: str | None, limit: int, order: str,
    ) -> Page:
        """A page of rows whose keys are chosen by callers (tenant ids, event types) and say
        nothing of time: newest first (oldest with ``asc``) by creation time, then key; the
        cursor is the last key seen (rows are kept when deleted, so its place is kept)."""
        newest_first = order != "asc"
        both = sa.tuple_(created, key)
        if cursor is not None:
            at = sa.select(created).where(key == cursor).scalar_subquery()
            bound = sa.tuple_(at, sa.literal(cursor))
            stmt = stmt.where(both < bound if newest_first else both > bound)
        direction = sa.desc if newest_first else sa.asc
        return await self._ordered_page(stmt.order_by(direction(created), direction(key)),
                                        limit, key=key.key or "id")

    async def _ordered_page(self, stmt: sa.Select[Any], limit: int, key: str = "id") -> Page:
        """``limit`` rows of ``stmt`` (ordered already); the cursor is the last row's
        ``key``."""
        async with self.engine.connect() as conn:
            rows = [row_dict(r) for r in await conn.execute(stmt.limit(limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1][key] if more and rows else None)
