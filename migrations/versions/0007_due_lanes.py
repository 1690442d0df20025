"""due lanes: the due-order index split into first attempts and retries (partial indexes)

A claim takes first attempts ahead of retries, so a retry storm does not delay fresh
deliveries; each lane is an index of its own, so neither is read past the other.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:00:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LANES = (("ix_delivery_due_first", "status = 'pending' AND attempts = 0"),
         ("ix_delivery_due_retry", "status = 'pending' AND attempts > 0"))


def upgrade() -> None:
    """Upgrade schema."""
    for name, where in LANES:
        op.create_index(name, 'delivery', ['status', 'next_attempt_at'], unique=False,
                        sqlite_where=sa.text(where), postgresql_where=sa.text(where))
    op.drop_index('ix_delivery_due', table_name='delivery')


def downgrade() -> None:
    """Downgrade schema."""
    op.create_index('ix_delivery_due', 'delivery', ['status', 'next_attempt_at'], unique=False)
    for name, _ in LANES:
        op.drop_index(name, table_name='delivery')
