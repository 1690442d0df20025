"""subscription signature_scheme: v1 (HMAC-SHA256) or v1a (Ed25519), v1 for every existing one

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:50:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signature_scheme', sa.String(length=8), nullable=False,
                                      server_default='v1'))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_column('signature_scheme')
