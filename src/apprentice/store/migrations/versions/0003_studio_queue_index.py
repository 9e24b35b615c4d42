"""Studio queue index: open comparisons in the order they are handed out (priority high first, then id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.create_index("ix_comparisons_queue", ["status", sa.text("priority DESC"), "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_index("ix_comparisons_queue")
