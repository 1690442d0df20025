"""The event-type catalog: put (create or replace), read, list, delete, each change raising
``catalog_version`` in its transaction; and the process's compiled copy that ingest checks
events against (``catalog.CatalogView``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..catalog import Catalog, CatalogView, catalog_of
from ..clock import utcnow
from ..database import Database
from ..models import catalog_version_table, event_type_table
from .base import StoreBase
from .rows import NotFound, Page, row_dict

_t, _v = event_type_table, catalog_version_table
LIVE = _t.c.deleted_at.is_(None)
SHOWN = (_t.c.type, _t.c.description, _t.c["schema"], _t.c.deprecated, _t.c.example,
         _t.c.created_at, _t.c.updated_at)
_VERSION = sa.select(_v.c.version).where(_v.c.id == 1)
# Every change takes this row first: catalog writes queue behind each other, and each one
# tells every process's copy that it is out of date.
_RAISE = sa.update(_v).where(_v.c.id == 1).values(version=_v.c.version + 1)


class EventTypes(StoreBase):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.catalog = CatalogView(self._catalog_version, self._load_catalog)

    async def _catalog_version(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(_VERSION) or 0)

    async def _load_catalog(self) -> Catalog:
        async with self.engine.connect() as conn, conn.begin():
            version = int(await conn.scalar(_VERSION) or 0)
            rows = (await conn.execute(
                sa.select(_t.c.type, _t.c["schema"]).where(LIVE))).all()
        return catalog_of(version, [tuple(r) for r in rows])

    async def put_event_type(self, event_type: str, fields: dict[str, Any]
                             ) -> tuple[dict[str, Any], bool]:
        """Create the type, or replace what is said of it; and whether it was created (a
        deleted type's name makes a new one)."""
        now = utcnow()
        values = {"description": fields.get("description") or "",
                  "schema": fields.get("schema"), "deprecated": bool(fields.get("deprecated")),
                  "example": fields.get("example"), "updated_at": now}
        async with self.writer.begin() as conn:
            await conn.execute(_RAISE)
            found = (await conn.execute(
                sa.select(_t.c.deleted_at).where(_t.c.type == event_type))).first()
            created = found is None or found.deleted_at is not None
            if found is None:
                await conn.execute(sa.insert(_t).values(
                    values | {"type": event_type, "created_at": now}))
            else:
                fresh = {"created_at": now, "deleted_at": None} if created else {}
                await conn.execute(
                    sa.update(_t).where(_t.c.type == event_type).values(values | fresh))
            row = (await conn.execute(sa.select(*SHOWN).where(_t.c.type == event_type))).one()
        self.catalog.changed()
        return row_dict(row), created

    async def get_event_type(self, event_type: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(*SHOWN).where(_t.c.type == event_type, LIVE))).first()
        if row is None:
            raise NotFound(event_type)
        return row_dict(row)

    async def list_event_types(self, cursor: str | None, limit: int, order: str) -> Page:
        """Newest first (or oldest, ``asc``), by creation time then type; the cursor is the
        last type seen (a deleted type's row stays, so its place is kept)."""
        return await self._page_by_creation(sa.select(*SHOWN).where(LIVE), _t.c.created_at,
                                            _t.c.type, cursor, limit, order)

    async def delete_event_type(self, event_type: str) -> None:
        now = utcnow()
        async with self.writer.begin() as conn:
            await conn.execute(_RAISE)
            gone = await conn.execute(sa.update(_t).where(_t.c.type == event_type, LIVE)
                                      .values(deleted_at=now, updated_at=now))
            if not gone.rowcount:
                raise NotFound(event_type)
        self.catalog.changed()

    async def event_type_names(self) -> list[str]:
        """The catalog's types that are not deprecated, by name (what the portal's forms
        offer first)."""
        async with self.engine.connect() as conn:
            return list((await conn.scalars(
                sa.select(_t.c.type).where(LIVE, _t.c.deprecated.is_(False))
                .order_by(_t.c.type).limit(200))).all())
