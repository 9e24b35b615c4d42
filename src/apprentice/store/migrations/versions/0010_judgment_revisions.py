"""Judgment revisions: an annotator's earlier answers, kept when they correct a judgment from their history.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "judgment_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("judgment_id", sa.Integer(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["judgment_id"],
            ["judgments.id"],
            name=op.f("fk_judgment_revisions_judgment_id_judgments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judgment_revisions")),
    )
    with op.batch_alter_table("judgment_revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_judgment_revisions_judgment_id"), ["judgment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("judgment_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_judgment_revisions_judgment_id"))
    op.drop_table("judgment_revisions")
