"""Crowd work: attention checks, adjudication of disagreeing comparisons, and studies with participants.

Adds to `comparisons` a purpose (attention checks), the number of times overlap was raised for another
judgment, and the resolved answer with who resolved it; and the tables `studies` and `study_participants`.
All additive: existing rows keep their meaning.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("escalations", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("resolution", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=255), nullable=True))
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("entry_key_hash", sa.String(length=64), nullable=False),
        sa.Column("quota", sa.Integer(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("completion_code", sa.String(length=64), nullable=False),
        sa.Column("completion_url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_studies_name")),
    )
    op.create_table(
        "study_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(length=64), nullable=False),
        sa.Column("platform_study_id", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_study_participants_annotator_id_annotators")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_participants_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_participants")),
        sa.UniqueConstraint("annotator_id", name=op.f("uq_study_participants_annotator_id")),
        sa.UniqueConstraint("study_id", "participant_id", name="uq_study_participants_pair"),
    )


def downgrade() -> None:
    op.drop_table("study_participants")
    op.drop_table("studies")
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("resolution")
        batch_op.drop_column("escalations")
        batch_op.drop_column("purpose")
