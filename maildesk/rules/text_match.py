"""Text matching for `when` conditions: one compiled test of one text value.

A Matcher pairs a find function with the way a field's values must be prepared for
it (PREPARE: raw, case-folded, or split into words), so a message prepares each field
once however many rules look at it. Regexes use RE2, linear in the input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

_WORD = re.compile(r"\w+")  # letters of every script, digits, underscore; linear time


class Words:
    """The words of a text, for whole-word lookups (`words_for`) and phrase lookups (`joined`).

    Splitting a long body into words costs far more than a few substring searches, so
    the first SCAN_LIMIT lookups search the text itself; only a field asked about more
    often (hundreds of rules) is split once into a set.
    """

    SCAN_LIMIT = 12
    __slots__ = ("_asked", "_found", "_joined", "_set", "text")

    def __init__(self, text: str):
        self.text = text
        self._asked = 0
        self._found: list[str] | None = None
        self._set: frozenset[str] | None = None
        self._joined: str | None = None

    @property
    def set(self) -> frozenset[str]:
        if self._set is None:
            self._set = frozenset(self._words())
        return self._set

    @property
    def joined(self) -> str:
        """The words as ' w1 w2 … '."""
        if self._joined is None:
            self._joined = " " + " ".join(self._words()) + " "
        return self._joined

    def words_for(self, lookups: int) -> frozenset[str] | None:
        """The set of words for `lookups` more lookups, or None while searching the text
        for each of them is still the cheaper way."""
        if self._set is None and self._asked + lookups <= self.SCAN_LIMIT:
            self._asked += lookups
            return None
        return self.set

    def _words(self) -> list[str]:
        if self._found is None:
            self._found = _WORD.findall(self.text)
        return self._found


def _has_word(text: str, word: str) -> bool:
    """`word` occurs in `text` with no word character (as \\w has it) on either side."""
    size = len(word)
    start = text.find(word)
    while start != -1:
        end = start + size
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return True
        start = text.find(word, start + 1)
    return False


# How a field's values are prepared for a matcher, once per message.
PREPARE: dict[str, Callable[[str], Any]] = {
    "raw": lambda v: v,
    "folded": str.casefold,
    "words": Words,
    "folded_words": lambda v: Words(v.casefold()),
}


@dataclass(frozen=True)
class Needles:
    """What any match needs, for the rule index: a value that is one of `keys` ("equal"),
    contains one ("substring") or matches one of these regexes ("regex").

    `prep` is the value the keys apply to ("raw" or "folded"); `case_sensitive` is
    how the regexes were compiled.
    """

    kind: str
    keys: tuple[str, ...]
    prep: str
    case_sensitive: bool = True


@dataclass(frozen=True)
class Matcher:
    """Finds what an operator looks for in one prepared value (see PREPARE)."""

    find: Callable[[Any], str | None]
    prep: str
    needles: Needles


@dataclass(frozen=True)
class Regex:
    """A `matches` pattern as written, and compiled."""

    text: str
    compiled: Any


def compile_regex(pattern: str, case_sensitive: bool) -> Any:
    """An RE2 pattern; raises re2.error (see regex_error) when it is not valid RE2."""
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    options.max_mem = 8 << 20  # bounds the compiled program, so a regex cannot eat memory
    return re2.compile(pattern, options)


def regex_error(exc: Exception) -> str:
    """RE2's reason for rejecting a pattern, as text."""
    text = exc.args[0] if exc.args else str(exc)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def make_matcher(op: str, values: list[str], case_sensitive: bool) -> Matcher:
    """A matcher for text operator `op`; `matches` patterns must already be valid."""
    fold = "raw" if case_sensitive else "folded"
    needles = list(values) if case_sensitive else [v.casefold() for v in values]
    if op in ("is", "in"):
        wanted = frozenset(needles)
        return Matcher(
            lambda v: v if v in wanted else None, fold, Needles("equal", (*wanted,), fold)
        )
    inside = Needles("substring", tuple(needles), fold)
    if op == "contains":

        def contains(value: str) -> str | None:
            for needle in needles:
                if needle in value:
                    return needle
            return None

        return Matcher(contains, fold, inside)
    if op == "starts_with":
        return Matcher(lambda v: _first(needles, v.startswith), fold, inside)
    if op == "ends_with":
        return Matcher(lambda v: _first(needles, v.endswith), fold, inside)
    if op == "domain":
        domains = [d.casefold().lstrip("@") for d in values]
        found = Needles("substring", tuple(domains), "folded")
        return Matcher(lambda v: _domain_match(v, domains), "folded", found)
    if op == "contains_word":
        return _word_matcher(values, "words" if case_sensitive else "folded_words", fold)
    if op == "matches":
        regexes = [Regex(p, compile_regex(p, case_sensitive)) for p in values]
        return regex_matcher(regexes, case_sensitive)
    raise ValueError(f"unknown operator {op}")


def regex_matcher(regexes: list[Regex], case_sensitive: bool) -> Matcher:
    """A matcher for `matches`, from patterns compiled with `case_sensitive`."""
    compiled = [r.compiled for r in regexes]
    needles = Needles("regex", tuple(r.text for r in regexes), "raw", case_sensitive)
    return Matcher(lambda v: _first_match(compiled, v), "raw", needles)


def _first(needles: list[str], test: Callable[[str], bool]) -> str | None:
    for needle in needles:
        if test(needle):
            return needle
    return None


def _word_matcher(values: list[str], prep: str, fold: str) -> Matcher:
    """Whole words (or phrases of words), in any script: a set lookup per word."""
    single: dict[str, str] = {}  # prepared word -> as written in rules.yaml
    phrases: dict[str, str] = {}  # ' w1 w2 ' -> as written
    for value in values:
        words = PREPARE[prep](value)
        if len(words.set) == 1 and words.joined.count(" ") == 2:
            single[next(iter(words.set))] = value
        elif words.set:
            phrases[words.joined] = value

    def find(prepared: Words) -> str | None:
        words = prepared.words_for(len(single))
        if words is None:
            for word, written in single.items():
                if _has_word(prepared.text, word):
                    return written
        else:
            for word, written in single.items():
                if word in words:
                    return written
        for phrase, written in phrases.items():
            if phrase in prepared.joined:
                return written
        return None

    # A word found is in the (folded) text; a phrase found has its longest word in it.
    keys = [*single, *(max(p.split(), key=len) for p in phrases)]
    return Matcher(find, prep, Needles("substring", tuple(keys), fold))


def _first_match(patterns: list[Any], value: str) -> str | None:
    for pattern in patterns:
        match = pattern.search(value)
        if match is not None:
            return match.group(0)
    return None


def _domain_match(address: str, domains: list[str]) -> str | None:
    domain = address.rpartition("@")[2]
    for d in domains:
        if domain == d or domain.endswith("." + d):
            return d
    return None
