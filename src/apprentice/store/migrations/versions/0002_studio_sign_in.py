"""Studio sign-in: one-time sign-in links and a session version per annotator.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signin_hash", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("signin_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.drop_column("session_version")
        batch_op.drop_column("signin_expires_at")
        batch_op.drop_column("signin_hash")
