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
import unicodedata
from collections import deque
from collections.abc import Iterable
from typing import Any

from maildesk.common.search_query import WORD, SearchTerm

PREFIX_MIN_LETTERS = 5  # shorter words match whole words only
STEM_MIN_LETTERS = 4  # a stem shorter than this would match too much
SNIPPET_WORDS_BEFORE, SNIPPET_WORDS_AFTER = 6, 14
SNIPPET_MAX_CHARS = 200
_LATIN_MARKS = re.compile(r"(?<=[a-z])[\u0300-\u036f]+")
# Letters SQLite's tokenizer keeps apart that people type either way: Russian writes
# е for ё, and Polish typed without its letters has l for ł.
_LETTERS = (("ё", "е"), ("Ё", "Е"), ("ł", "l"), ("Ł", "L"))
_stemmer_lock = threading.Lock()


def fold_letters(text: str) -> str:
    """ё as е and ł as l (see _LETTERS)."""
    if not text.isascii():
        for letter, plain in _LETTERS:  # str.replace: 40 times faster than str.translate
            text = text.replace(letter, plain)
    return text


def fold(text: str) -> str:
    """Lower case, accents off Latin letters (ą -> a, é -> e), ё as е, ł as l: what
    SQLite's `unicode61 remove_diacritics 2` and `fold_letters` do, in Python."""
    text = fold_letters(unicodedata.normalize("NFC", text).lower())
    if text.isascii():
        return text
    stripped = _LATIN_MARKS.sub("", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFC", stripped)


def folded_words(text: str) -> list[str]:
    """The words of `text` as PostgreSQL's index gets them (folded, separators dropped)."""
    if text.isascii():
        return WORD.findall(text.lower())
    # Folding never reaches across white space, and most of a mail's tokens recur from
    # mail to mail: folding each distinct token once is 3-4 times faster than folding
    # (three Unicode normalisations of) the whole text.
    words: list[str] = []
    for token in text.split():
        words.extend(_folded_token(token))
    return words


@functools.lru_cache(maxsize=16384)
def _folded_token(token: str) -> tuple[str, ...]:
    return tuple(WORD.findall(fold(token)))


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
