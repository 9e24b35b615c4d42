"""Assignments by annotator and status: finding the tasks an annotator holds reads only those.

With an index on the annotator alone, the lookup of their leased tasks (on every submission) visited every
assignment they ever had, so it slowed down as they worked. The composite index also serves lookups by the
annotator alone, so it replaces that one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 16:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_annotator_status", ["annotator_id", "status"], unique=False)
        batch_op.drop_index("ix_assignments_annotator_id")


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_annotator_id", ["annotator_id"], unique=False)
        batch_op.drop_index("ix_assignments_annotator_status")
