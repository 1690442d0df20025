"""ordered subscriptions: subscription.ordered and next_sequence, delivery.sequence, and the
two partial indexes of an ordered subscription's pending deliveries (store/ordering.py)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 21:00:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PENDING_ORDERED = "status = 'pending' AND sequence IS NOT NULL"
INDEXES = (("ix_delivery_ordered_due", ['subscription_id'],
            PENDING_ORDERED + " AND next_attempt_at IS NOT NULL"),
           ("ix_delivery_ordered_waiting", ['subscription_id', 'sequence'],
            PENDING_ORDERED + " AND next_attempt_at IS NULL"))


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordered', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('next_sequence', sa.BigInteger(), nullable=False,
                                      server_default='0'))
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sequence', sa.BigInteger(), nullable=True))
    for name, columns, where in INDEXES:
        op.create_index(name, 'delivery', columns, unique=False,
                        sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    """Downgrade schema."""
    for name, _, _ in INDEXES:
        op.drop_index(name, table_name='delivery')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('sequence')
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_column('next_sequence')
        batch_op.drop_column('ordered')
