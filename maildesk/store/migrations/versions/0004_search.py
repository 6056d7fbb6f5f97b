"""search_index: full-text search over stored messages, filled from those already there

Revision ID: 0004_search
Revises: 0003_blob_chunks
"""

import re
import unicodedata
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_search"
down_revision: str | None = "0003_blob_chunks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As maildesk indexed messages when this revision was written (store/search_index.py,
# store/search_terms.py); copied, so that this step never changes.
MAX_INDEXED_CHARS = 100_000
CHUNK = 500
_WORD = re.compile(r"[^\W_]+")
_LATIN_MARKS = re.compile(r"(?<=[a-z])[\u0300-\u036f]+")
_LETTERS = str.maketrans("ёЁłŁ", "еЕlL")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.create_table(
            "search_index",
            sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), primary_key=True),
            sa.Column("words", postgresql.TSVECTOR(), nullable=False),
        )
        op.create_index("ix_search_index_words", "search_index", ["words"], postgresql_using="gin")
        insert = sa.text(
            "INSERT INTO search_index (message_id, words) "
            "VALUES (:id, to_tsvector('simple'::regconfig, :words))"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE search_index USING fts5(words, content='', columnsize=0, "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        insert = sa.text("INSERT INTO search_index (rowid, words) VALUES (:id, :words)")
    postgres = bind.dialect.name == "postgresql"
    for documents in _documents(bind):
        rows = [
            {"id": id_, "words": _pg_words(text) if postgres else text.translate(_LETTERS)}
            for id_, text in documents
        ]
        bind.execute(insert, rows)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_search_index_words", table_name="search_index")
    op.drop_table("search_index")


def _documents(bind: sa.Connection) -> Iterator[list[tuple[int, str]]]:
    """The stored messages' documents, a chunk at a time."""
    meta = sa.MetaData()
    messages = sa.Table("messages", meta, autoload_with=bind)
    tickets = sa.Table("tickets", meta, autoload_with=bind)
    attachments = sa.Table("attachments", meta, autoload_with=bind)
    last = 0
    while True:
        rows = bind.execute(
            sa.select(messages, tickets.c.ref)
            .join(tickets, tickets.c.id == messages.c.ticket_id)
            .where(messages.c.id > last)
            .order_by(messages.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        last = rows[-1].id
        names: dict[int, list[str]] = {}
        for message_id, filename in bind.execute(
            sa.select(attachments.c.message_id, attachments.c.filename)
            .where(attachments.c.message_id.in_([r.id for r in rows]))
            .order_by(attachments.c.id)
        ):
            names.setdefault(message_id, []).append(filename)
        yield [(r.id, _document(r, names.get(r.id, []))) for r in rows]


def _document(row: sa.Row, attachment_names: list[str]) -> str:
    sender = f"{row.from_name} <{row.from_addr}>" if row.from_name else row.from_addr
    people = [sender, *(row.to_addrs or []), *(row.cc_addrs or [])]
    body = (row.text_body or "")[:MAX_INDEXED_CHARS]
    parts = [row.ref, row.subject, *people, *attachment_names, body]
    return "\n".join(str(part) for part in parts if part)


def _pg_words(text: str) -> str:
    text = unicodedata.normalize("NFC", text).lower().translate(_LETTERS)
    if not text.isascii():
        text = unicodedata.normalize(
            "NFC", _LATIN_MARKS.sub("", unicodedata.normalize("NFD", text))
        )
    return " ".join(_WORD.findall(text))
