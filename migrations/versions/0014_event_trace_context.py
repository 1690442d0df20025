"""event.trace_context: the W3C traceparent of the request that accepted the event, kept
while tracing is on so that its attempts' spans link to it (dispatcher/tracing.py)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 00:10:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0014'
down_revision: Union[str, Sequence[str], None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace_context', sa.String(length=55), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('trace_context')
