"""answered_mail: mail answered without a ticket is known by its dedup key

Revision ID: 0010_answered_mail
Revises: 0009_outbox_body_message

An agent's `#find` mail is answered and not stored. Taken again (a crash between the
commit and marking it done on a Maildir or the spool, or the same file fed twice),
it was answered again; its dedup key now makes it a duplicate.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_answered_mail"
down_revision: str | None = "0009_outbox_body_message"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answered_mail",
        sa.Column("dedup_key", sa.String(length=1000), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dedup_key"),
    )


def downgrade() -> None:
    op.drop_table("answered_mail")
