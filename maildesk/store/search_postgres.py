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
# The tsvectors are written out here, not made by to_tsvector on the server: that
# took 0.12 ms a message of the server's time, while the daemon waited for it, against
# 0.035 ms to write them here; and the words are then exactly folded_words'.
_INSERT = (
    "INSERT INTO search_index (message_id, words) "
    "SELECT m, w::tsvector FROM unnest(%b::integer[], %b::text[]) AS d(m, w)"
)
MAX_POSITION = 16383  # PostgreSQL's limits for a tsvector entry
MAX_POSITIONS_PER_WORD = 255
MAX_WORD_BYTES = 2047


class PostgresSearch:
    """SearchBackend for PostgreSQL."""

    def index(self, session: Session, documents: Sequence[tuple[int, str]]) -> None:
        ids = [message_id for message_id, _ in documents]
        vectors = [tsvector_text(folded_words(text)) for _, text in documents]
        execute_binary(session, _INSERT, (ids, vectors))

    def matching(self, term: SearchTerm) -> Select[Any]:
        query = cast(literal(tsquery(term)), TSQUERY)
        return select(_INDEX.c.message_id).where(_INDEX.c.words.op("@@")(query))


def tsvector_text(words: list[str]) -> str:
    """`words` as a tsvector in PostgreSQL's input syntax, as to_tsvector('simple') makes
    it of them: each word once with its positions (from 1, at most 255, none above
    16383). Words hold only letters and digits, so quoting them is enough; a word too
    long for an index entry is left out (and not counted)."""
    if any(len(word) > MAX_WORD_BYTES // 4 for word in words):
        words = [word for word in words if len(word.encode()) <= MAX_WORD_BYTES]
    positions: dict[str, list[str]] = {}
    for word, position in zip(words, _POSITIONS, strict=False):  # stops at MAX_POSITION
        positions.setdefault(word, []).append(position)
    last = _POSITIONS[-1]
    for word in words[MAX_POSITION:]:  # all at the last position, once each
        found = positions.setdefault(word, [])
        if found[-1:] != [last]:
            found.append(last)
    return " ".join(
        f"'{word}':" + ",".join(found[:MAX_POSITIONS_PER_WORD]) for word, found in positions.items()
    )


_POSITIONS = tuple(str(number) for number in range(1, MAX_POSITION + 1))


def tsquery(term: SearchTerm) -> str:
    """The tsquery of one term: a phrase (`<->`), a whole word, or stems as prefixes.

    Folded words hold only letters and digits, so quoting them is enough.
    """
    found = () if term.exact else prefixes(term.words[0])
    if found:
        return " | ".join(f"'{stem}':*" for stem in found)
    words = [w for word in term.words for w in folded_words(word)]
    return " <-> ".join(f"'{w}'" for w in words)
