"""The studio's failed-attempt counts, and fast checks that refuse a wrong credential before its slow hash.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_check", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("signin_check", sa.String(length=32), nullable=True))
    op.create_table(
        "auth_failures",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_auth_failures")),
    )


def downgrade() -> None:
    op.drop_table("auth_failures")
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.drop_column("signin_check")
        batch_op.drop_column("credential_check")
