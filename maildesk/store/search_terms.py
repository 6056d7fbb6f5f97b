"""How query words meet the index: folding, stems as prefixes, and snippets (pure).

Neither SQLite's FTS5 nor PostgreSQL's `simple` configuration knows Russian or
Polish endings, so the index holds words as written and a query word of five letters
or more is looked up by its Snowball stems as prefixes: `принтера` -> `принтер*`
finds принтер, принтеру, принтерами; `drukarki` -> `drukark*` finds drukarka,
drukarkę. Shorter words and quoted terms match whole words only, so `cat` never
finds "category" or "concatenate".
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from maildesk.common.search_query import WORD, SearchTerm
from maildesk.common.search_words import fold

PREFIX_MIN_LETTERS = 5  # shorter words match whole words only
STEM_MIN_LETTERS = 4  # a stem shorter than this would match too much
SNIPPET_WORDS_BEFORE, SNIPPET_WORDS_AFTER = 6, 14
SNIPPET_MAX_CHARS = 200
_stemmer_lock = threading.Lock()


@functools.cache
def _stemmer(language: str) -> Any:  # snowballstemmer has no type hints
    import snowballstemmer  # loaded only by a search

    return snowballstemmer.stemmer(language)


def _languages(word: str) -> tuple[str, ...]:
    if any("\u0400" <= c <= "\u04ff" for c in word):
        return ("russian",)
    if all(c < "\u0250" for c in word):  # Latin letters
        # Polish or English: nothing tells them apart in one word, so both stems count.
        return ("polish", "english")
    return ()


def prefixes(word: str) -> tuple[str, ...]:
    """The folded prefixes a query word is looked up by; () when it must match whole."""
    lowered = word.lower()
    if len(lowered) < PREFIX_MIN_LETTERS or not lowered.isalpha():
        return ()
    stems = {lowered}
    with _stemmer_lock:  # Snowball stemmers keep their state in the object
        stems.update(_stemmer(lang).stemWord(lowered) for lang in _languages(lowered))
    found: list[str] = []
    long_enough = {fold(s) for s in stems if len(s) >= STEM_MIN_LETTERS}
    for stem in sorted(long_enough, key=lambda s: (len(s), s)):
        if not any(stem.startswith(shorter) for shorter in found):
            found.append(stem)
    return tuple(found)


class TermMatcher:
    """Tells whether a folded word of a text is one a query's terms look for."""

    def __init__(self, terms: Iterable[SearchTerm]):
        self.whole: set[str] = set()
        starts: list[str] = []
        for term in terms:
            found = () if term.exact else prefixes(term.words[0])
            if found:
                starts.extend(found)
            else:
                self.whole.add(fold(term.words[0]))
        self.starts = tuple(starts)

    def __call__(self, folded_word: str) -> bool:
        return folded_word in self.whole or folded_word.startswith(self.starts)


def snippet(text: str, matches: TermMatcher) -> str:
    """A few words of `text` around the first word a term looks for (else its start)."""
    before: deque[re.Match[str]] = deque(maxlen=SNIPPET_WORDS_BEFORE + 1)
    chosen: list[re.Match[str]] = []
    wanted = 0
    for found in WORD.finditer(text):
        if chosen:
            chosen.append(found)
            if len(chosen) >= wanted:
                break
            continue
        before.append(found)
        if matches(fold(found.group())):
            chosen = list(before)
            wanted = len(chosen) + SNIPPET_WORDS_AFTER
    if not chosen:
        chosen = list(itertools.islice(WORD.finditer(text), SNIPPET_WORDS_AFTER))
    if not chosen:
        return ""
    begin, end = chosen[0].start(), chosen[-1].end()
    more = WORD.search(text, end) is not None
    piece = " ".join(text[begin : end if more else len(text)].split())  # with the last "."
    if len(piece) > SNIPPET_MAX_CHARS:
        piece, more = piece[: SNIPPET_MAX_CHARS - 1].rstrip(), True
    return ("…" if WORD.search(text, 0, begin) else "") + piece + ("…" if more else "")
