"""automatic_mail: bounces, complaints and auto-replies that matched no ticket

Revision ID: 0006_automatic
Revises: 0005_lease_token
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_automatic"
down_revision: str | None = "0005_lease_token"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "automatic_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("from_addr", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=1000), nullable=True),
        sa.Column("dedup_key", sa.String(length=1000), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw_size", sa.BigInteger(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
    )
    with op.batch_alter_table("automatic_mail", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_automatic_mail_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_automatic_mail_raw_sha256"), ["raw_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("automatic_mail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_automatic_mail_raw_sha256"))
        batch_op.drop_index(batch_op.f("ix_automatic_mail_received_at"))
    op.drop_table("automatic_mail")
