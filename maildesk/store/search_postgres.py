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
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Select, cast, column, literal, select, table
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.orm import Session

from maildesk.common.search_query import SearchTerm
from maildesk.common.search_words import MAX_POSITIONS_PER_WORD, folded_words, tsvector_text
from maildesk.store.pg_bulk import execute_binary
from maildesk.store.search_terms import prefixes

if TYPE_CHECKING:  # `maildesk search` reads the index without the intake stage
    from maildesk.intake.message import ParsedMessage

_INDEX = table("search_index", column("message_id", Integer), column("words", TSVECTOR))
# One statement per batch: an executemany would be one INSERT per message on the server.
# The tsvectors are written by maildesk, not made by to_tsvector on the server (0.12 ms
# a message of the server's time, which the daemon waited for), so the words are exactly
# folded_words'. The rest of a message's vector comes from its parser child
# (intake.search_document); `||` moves its positions past the ref's, which gives the
# vector of the whole document, ref first (tests/test_search.py holds it to that).
_INSERT = (
    "INSERT INTO search_index (message_id, words) "
    "SELECT m, r::tsvector || w::tsvector "
    "FROM unnest(%b::integer[], %b::text[], %b::text[]) AS d(m, r, w)"
)


class PostgresSearch:
    """SearchBackend for PostgreSQL."""

    def index(self, session: Session, messages: Sequence[tuple[int, str, ParsedMessage]]) -> None:
        vectors = [_vectors(ref, msg) for _, ref, msg in messages]
        ids = [pk for pk, _, _ in messages]
        execute_binary(session, _INSERT, (ids, [r for r, _ in vectors], [w for _, w in vectors]))

    def matching(self, term: SearchTerm) -> Select[Any]:
        query = cast(literal(tsquery(term)), TSQUERY)
        return select(_INDEX.c.message_id).where(_INDEX.c.words.op("@@")(query))


def _vectors(ref: str, msg: ParsedMessage) -> tuple[str, str]:
    """The ref's vector and the rest's (see _INSERT)."""
    from maildesk.intake.search_document import body_document, search_vector_of

    ref_words = folded_words(ref)
    rest = search_vector_of(msg)
    if any(_positions(rest, word) >= MAX_POSITIONS_PER_WORD for word in ref_words):
        # `||` would keep one position more of this word than to_tsvector does: rare
        # enough (a ref's word 255 times in a mail) to make the whole vector here.
        return tsvector_text(ref_words + folded_words(body_document(msg))), ""
    return tsvector_text(ref_words), rest


def _positions(vector: str, word: str) -> int:
    """How many positions `word` has in `vector` (tsvector_text's syntax)."""
    padded = " " + vector  # every entry then starts after a space
    entry = f" '{word}':"
    found = padded.find(entry)
    if found == -1:
        return 0
    end = padded.find(" ", found + len(entry))
    return padded[found + len(entry) : end if end != -1 else None].count(",") + 1


def tsquery(term: SearchTerm) -> str:
    """The tsquery of one term: a phrase (`<->`), a whole word, or stems as prefixes.

    Folded words hold only letters and digits, so quoting them is enough.
    """
    found = () if term.exact else prefixes(term.words[0])
    if found:
        return " | ".join(f"'{stem}':*" for stem in found)
    words = [w for word in term.words for w in folded_words(word)]
    return " <-> ".join(f"'{w}'" for w in words)
