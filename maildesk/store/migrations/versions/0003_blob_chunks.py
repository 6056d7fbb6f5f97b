"""blob_chunks: big blobs in the database, in pieces (storage.backend: database)

Revision ID: 0003_blob_chunks
Revises: 0002_notify
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_blob_chunks"
down_revision: str | None = "0002_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq"),
    )


def downgrade() -> None:
    # Older revisions know nothing of this table: dropping it would lose attachments.
    pieces = op.get_bind().scalar(sa.text("SELECT count(*) FROM blob_chunks"))
    if pieces:
        raise RuntimeError(
            f"blob_chunks holds {pieces} pieces of stored messages and attachments, which "
            "older revisions cannot read; downgrading would delete them. Delete the rows "
            "yourself first if that is really meant."
        )
    op.drop_table("blob_chunks")
