"""Search on SQLite: an FTS5 table with the `unicode61 remove_diacritics 2` tokenizer.

The table is contentless (`content=''`): it holds only the index, the text stays in
`messages`, and its rowid is the message's id. SQLite before 3.43 cannot delete from
such a table; nothing deletes messages today, and whatever starts to must remove
their index rows with FTS5's 'delete' command and the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Select, Text, column, select, table
from sqlalchemy.orm import Session

from maildesk.common.search_query import SearchTerm
from maildesk.common.search_words import fold_letters
from maildesk.store.search_terms import prefixes

if TYPE_CHECKING:  # `maildesk search` reads the index without the intake stage
    from maildesk.intake.message import ParsedMessage

_INDEX = table("search_index", column("rowid", Integer), column("words", Text))
_INSERT = "INSERT INTO search_index (rowid, words) VALUES (?, ?)"


class Fts5Search:
    """SearchBackend for SQLite."""

    def index(self, session: Session, messages: Sequence[tuple[int, str, ParsedMessage]]) -> None:
        from maildesk.store.search_index import message_document

        rows = [(pk, fold_letters(message_document(ref, msg))) for pk, ref, msg in messages]
        # Straight to the driver: one executemany, without per-row parameter processing.
        session.connection().exec_driver_sql(_INSERT, rows)

    def matching(self, term: SearchTerm) -> Select[Any]:
        return select(_INDEX.c.rowid).where(_INDEX.c.words.match(fts5_query(term)))


def fts5_query(term: SearchTerm) -> str:
    """The FTS5 query of one term: a phrase, a whole word, or stems as prefixes.

    Words hold only letters and digits, so quoting them can never make an operator;
    FTS5 folds case and accents in the quoted text itself.
    """
    found = () if term.exact else prefixes(term.words[0])
    if found:
        return " OR ".join(f'"{stem}"*' for stem in found)
    return '"' + fold_letters(" ".join(term.words)) + '"'
