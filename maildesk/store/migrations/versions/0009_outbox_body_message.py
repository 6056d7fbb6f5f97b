"""outbox.body_message_id: a relayed customer's mail is stored once, not once per reader

Revision ID: 0009_outbox_body_message
Revises: 0008_lookup_indexes

Each agent's copy of a customer's mail carried the whole text in its row's context,
so a queue of three agents stored the text three times more besides the message row.
A row may now name the message whose text is its body; claiming reads it from there.
Rows written before keep their body in the context and render as they did. Both
databases add the column in place (no table copy), so the upgrade is quick on a big
outbox.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_outbox_body_message"
down_revision: str | None = "0008_lookup_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_outbox_body_message_id"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with a REFERENCES clause (its default is NULL) in place;
        # Alembic would copy the whole outbox table to add the foreign key.
        op.execute("ALTER TABLE outbox ADD COLUMN body_message_id INTEGER REFERENCES messages (id)")
        return
    op.add_column("outbox", sa.Column("body_message_id", sa.Integer(), nullable=True))
    op.create_foreign_key(FOREIGN_KEY, "outbox", "messages", ["body_message_id"], ["id"])


def downgrade() -> None:
    # The rows that refer to their message get its text back, so the older code, which
    # reads the body from the context only, still sends them whole.
    op.execute("UPDATE outbox SET context = " + _with_body() + " WHERE body_message_id IS NOT NULL")
    if op.get_bind().dialect.name == "sqlite":
        op.drop_column("outbox", "body_message_id")  # SQLite 3.35+ (drops its reference)
    else:
        op.drop_constraint(FOREIGN_KEY, "outbox", type_="foreignkey")
        op.drop_column("outbox", "body_message_id")


def _with_body() -> str:
    """SQL for the row's context with "body" set to its message's text."""
    text = "(SELECT text_body FROM messages WHERE messages.id = outbox.body_message_id)"
    if op.get_bind().dialect.name == "postgresql":
        return f"(context::jsonb || jsonb_build_object('body', {text}))::json"
    return f"json_set(context, '$.body', {text})"
