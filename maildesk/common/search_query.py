"""Search queries as people type them, and the tickets a search finds (pure data).

A query is words and "quoted phrases"; a ticket matches when every one of them is
found in it. How a term meets an index (stems, prefixes) is the store's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from maildesk.common.errors import MaildeskError

MAX_TERMS = 20
# Words as both indexes see them: runs of letters and digits; the rest separates.
WORD = re.compile(r"[^\W_]+")
_PART = re.compile(r'"([^"]*)"?|([^\s"]+)')


class QueryError(MaildeskError):
    """A search query with nothing to search for, or too much."""


@dataclass(frozen=True)
class SearchTerm:
    """One word or phrase of a query. `exact` terms (quoted, or several words such as
    an address or a ref) match their words in order, with no other forms."""

    words: tuple[str, ...]
    exact: bool

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class SearchHit:
    """A ticket a search found, with a piece of the text that matched."""

    ref: str
    subject: str
    status: str
    queue: str
    assignee: str | None
    requester: str
    created_at: datetime
    updated_at: datetime
    snippet: str


def parse_query(text: str) -> list[SearchTerm]:
    """The terms of `text`; QueryError when it has no word or more than MAX_TERMS."""
    terms = []
    for match in _PART.finditer(text):
        quoted, bare = match.group(1), match.group(2)
        words = tuple(WORD.findall(quoted if quoted is not None else bare))
        if words:
            terms.append(SearchTerm(words, exact=quoted is not None or len(words) > 1))
    if not terms:
        raise QueryError(f"nothing to search for in {text!r}: give at least one word")
    if len(terms) > MAX_TERMS:
        raise QueryError(f"{len(terms)} words and phrases; a search takes at most {MAX_TERMS}")
    return list(dict.fromkeys(terms))
