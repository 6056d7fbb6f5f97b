"""The words a text is searched by (pure): folded as both databases' indexes fold them,
and written as a PostgreSQL tsvector.

Here, not in store/, because the parser children make a message's tsvector while they
read it (intake), and the store and its queries use the same folding.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from maildesk.common.search_query import WORD

_LATIN_MARKS = re.compile(r"(?<=[a-z])[\u0300-\u036f]+")
# Letters SQLite's tokenizer keeps apart that people type either way: Russian writes
# е for ё, and Polish typed without its letters has l for ł.
_LETTERS = (("ё", "е"), ("Ё", "Е"), ("ł", "l"), ("Ł", "L"))

MAX_POSITION = 16383  # PostgreSQL's limits for a tsvector entry
MAX_POSITIONS_PER_WORD = 255
MAX_WORD_BYTES = 2047


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
