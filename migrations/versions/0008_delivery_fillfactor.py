"""delivery fillfactor 70 on PostgreSQL: room on each page for a claim's update to stay HOT

Measured (docs/indexes.md, issue 16): 20,000 deliveries on defaults, HOT updates of
`delivery` 2 % at the default fillfactor (100), 19 % at 70, the heap no larger, delivery no
slower. SQLite has no such setting.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:10:00.000000
"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE delivery SET (fillfactor = 70)")


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE delivery RESET (fillfactor)")
