"""Drop three indexes that a composite index or unique constraint covers already.

Each was written on every judgment and read by nothing: `ix_judgments_comparison_id` is the prefix of
`uq_judgments_pair (comparison_id, annotator_id)`, `ix_assignments_comparison_id` the prefix of
`uq_assignments_pair (comparison_id, annotator_id)`, and `ix_comparisons_open (status, priority)` the prefix of
`ix_comparisons_queue (status, priority DESC, id)` (a B-tree serves either direction). Lookups by those columns
use the covering index instead; a judgment writes three index entries fewer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 21:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("judgments", schema=None) as batch_op:
        batch_op.drop_index("ix_judgments_comparison_id")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_comparison_id")
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_index("ix_comparisons_open")


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.create_index("ix_comparisons_open", ["status", "priority"], unique=False)
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_comparison_id", ["comparison_id"], unique=False)
    with op.batch_alter_table("judgments", schema=None) as batch_op:
        batch_op.create_index("ix_judgments_comparison_id", ["comparison_id"], unique=False)
