"""Search on PostgreSQL: a `tsvector` column with a GIN index, `simple` configuration.

The words are folded in Python first (lower case, ё as е, accents off Latin letters,
everything but letters and digits a separator), so PostgreSQL finds what SQLite's
FTS5 finds whatever the database's locale, and its parser never sees an address or
a file name whole (it would keep `ivan@example.net` as one word). The language
configurations are not used: they need each word's language, and `russian` would
stem Polish as English; stems come from the query side instead (`search_terms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Select, cast, column, literal, select, table
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.orm import Session

from maildesk.common.search_query import SearchTerm
from maildesk.store.pg_bulk import execute_binary
from maildesk.store.search_terms import folded_words, prefixes

_INDEX = table("search_index", column("message_id", Integer), column("words", TSVECTOR))
# One statement per batch: an executemany would be one INSERT per message on the server.
_INSERT = (
    "INSERT INTO search_index (message_id, words) "
    "SELECT m, to_tsvector('simple'::regconfig, w) "
    "FROM unnest(%b::integer[], %b::text[]) AS d(m, w)"
)


class PostgresSearch:
    """SearchBackend for PostgreSQL."""

    def index(self, session: Session, documents: Sequence[tuple[int, str]]) -> None:
        ids = [message_id for message_id, _ in documents]
        words = [" ".join(folded_words(text)) for _, text in documents]
        execute_binary(session, _INSERT, (ids, words))

    def matching(self, term: SearchTerm) -> Select[Any]:
        query = cast(literal(tsquery(term)), TSQUERY)
        return select(_INDEX.c.message_id).where(_INDEX.c.words.op("@@")(query))


def tsquery(term: SearchTerm) -> str:
    """The tsquery of one term: a phrase (`<->`), a whole word, or stems as prefixes.

    Folded words hold only letters and digits, so quoting them is enough.
    """
    found = () if term.exact else prefixes(term.words[0])
    if found:
        return " | ".join(f"'{stem}':*" for stem in found)
    words = [w for word in term.words for w in folded_words(word)]
    return " <-> ".join(f"'{w}'" for w in words)
