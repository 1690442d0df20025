"""tenants: the tenant table, and tenant_id on keys, subscriptions, events and deliveries

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:00:00.000000

Every row stored before this revision has no tenant (``tenant_id`` null, ``broadcast``
false): tenant-less events keep going to tenant-less subscriptions, as before.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import dispatcher.models


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TENANT_ID = sa.String(length=64)


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'tenant',
        sa.Column('id', TENANT_ID, nullable=False),
        sa.Column('name', sa.String(length=200), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('created_at', dispatcher.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', dispatcher.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('deleted_at', dispatcher.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_tenant_created_id', 'tenant', ['created_at', 'id'], unique=False)
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', TENANT_ID, nullable=True))
        batch_op.create_index('ix_api_key_tenant_id', ['tenant_id'], unique=False)
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', TENANT_ID, nullable=True))
        batch_op.create_index('ix_subscription_tenant_id', ['tenant_id', 'id'], unique=False)
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', TENANT_ID, nullable=True))
        batch_op.add_column(sa.Column('broadcast', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_event_tenant_id', ['tenant_id', 'id'], unique=False)
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', TENANT_ID, nullable=True))
        batch_op.create_index('ix_delivery_tenant_id', ['tenant_id', 'id'], unique=False)


def downgrade() -> None:
    """Downgrade schema (tenants and what was scoped to them are forgotten)."""
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_tenant_id')
        batch_op.drop_column('tenant_id')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_tenant_id')
        batch_op.drop_column('broadcast')
        batch_op.drop_column('tenant_id')
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_tenant_id')
        batch_op.drop_column('tenant_id')
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_index('ix_api_key_tenant_id')
        batch_op.drop_column('tenant_id')
    op.drop_index('ix_tenant_created_id', table_name='tenant')
    op.drop_table('tenant')
