"""portal links: the links into a tenant's portal, their secrets kept as hashes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import dispatcher.models


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'portal_link',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('read_only', sa.Boolean(), nullable=False),
        sa.Column('created_at', dispatcher.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', dispatcher.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', dispatcher.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_portal_link_tenant_id', 'portal_link', ['tenant_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema (every portal link is forgotten: its sessions end)."""
    op.drop_index('ix_portal_link_tenant_id', table_name='portal_link')
    op.drop_table('portal_link')
