"""PostgreSQL: big values compressed with lz4 instead of pglz, where the server has it

Revision ID: 0007_lz4
Revises: 0006_automatic

pglz took a fifth of the server's CPU while ingesting (raw messages in `blobs`, bodies,
notification contexts); lz4 compresses several times faster. Only values written
from now on are affected; PostgreSQL reads both. Servers before 14, or built without
lz4, keep pglz. Nothing changes on SQLite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_lz4"
down_revision: str | None = "0006_automatic"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("blobs", "data"),
    ("blob_chunks", "data"),
    ("messages", "text_body"),
    ("messages", "html_body"),
    ("outbox", "context"),
    ("outbox", "raw"),
    ("search_index", "words"),
)


def upgrade() -> None:
    if _has_lz4(op.get_bind()):
        _set_compression("lz4")


def downgrade() -> None:
    if _has_lz4(op.get_bind()):
        _set_compression("DEFAULT")


def _set_compression(method: str) -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def _has_lz4(bind: sa.Connection) -> bool:
    if bind.dialect.name != "postgresql":
        return False
    found = bind.scalar(
        sa.text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
    )
    return bool(found)
