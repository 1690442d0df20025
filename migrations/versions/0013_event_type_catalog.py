"""the event-type catalog: event_type (description, JSON Schema, deprecated, example) and the
one-row catalog_version that every change raises (dispatcher/catalog.py)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:50:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import dispatcher.models


# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'event_type',
        sa.Column('type', sa.String(length=128), nullable=False),
        sa.Column('description', sa.String(length=2000), nullable=False),
        sa.Column('schema', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('deprecated', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('example', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('created_at', dispatcher.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', dispatcher.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('deleted_at', dispatcher.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('type'),
    )
    op.create_index('ix_event_type_created_type', 'event_type', ['created_at', 'type'],
                    unique=False)
    version = op.create_table(
        'catalog_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(version, [{'id': 1, 'version': 0}])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('catalog_version')
    op.drop_index('ix_event_type_created_type', table_name='event_type')
    op.drop_table('event_type')
