"""manual attempts outside the schedule; no open delivery of a deleted subscription

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00.000000

``delivery.resume_at`` keeps a pending delivery's ``next_attempt_at`` while a manual attempt
("Retry now") runs, so a failed one leaves the schedule where it was. The deliveries that
an attempt in flight put back to ``pending`` or ``held`` after their subscription was
deleted (the bug fixed with this revision) become ``cancelled``, as the deletion made them.
"""
from datetime import UTC, datetime
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import dispatcher.models


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_at', dispatcher.models.UTCDateTime(timezone=True),
                                      nullable=True))
    delivery = sa.table(
        'delivery', sa.column('subscription_id'), sa.column('status'),
        sa.column('next_attempt_at'), sa.column('updated_at', dispatcher.models.UTCDateTime()))
    subscription = sa.table('subscription', sa.column('id'), sa.column('deleted_at'))
    deleted = sa.select(subscription.c.id).where(subscription.c.deleted_at.is_not(None))
    op.execute(
        sa.update(delivery)
        .where(delivery.c.status.in_(('pending', 'held')),
               delivery.c.subscription_id.in_(deleted))
        .values(status='cancelled', next_attempt_at=None, updated_at=datetime.now(UTC))
    )


def downgrade() -> None:
    """Downgrade schema (cancelled deliveries stay cancelled)."""
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('resume_at')
