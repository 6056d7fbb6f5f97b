"""Which rules a message can match at all, found in one pass over each field it tests.

Every rule's condition yields a prefilter: values a field must equal, or literals or
regexes it must contain, at least one of which holds whenever the rule matches. Per
message, each field's values are looked up once in a hash of the wanted values and
searched once with an RE2 set of all its literals and regexes; only rules whose
prefilter fired (and rules without one) are then tested. A rule the index leaves out
could not have matched, so the result is the same as testing every rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import re2

from maildesk.rules.conditions import AllOf, AnyOf, Condition, HeaderTest, TextTest
from maildesk.rules.message_view import MessageView
from maildesk.rules.text_match import Needles

# A pattern that matches every text, kept first in each set: a search that does not
# report it failed (RE2 out of memory), and every rule of that set must be tested.
_EVERYTHING = ""
_SET_MEMORY = 64 << 20  # a cap RE2 grows its cache towards only as it needs to
# Searching a field costs about what testing a few rules does: a field that fewer rules
# look at is not searched, and those rules are tested on every message.
MIN_RULES_PER_SCAN = 6


@dataclass(frozen=True)
class Trigger:
    """One thing a rule's condition needs: `needles` in one field of the message."""

    source: str  # a text field's name, or "header:<lowercased name>"
    needles: Needles


def triggers(condition: Condition) -> list[Trigger] | None:
    """Triggers at least one of which fires on every message `condition` holds for;
    None when there are none such (the rule is tested on every message)."""
    if isinstance(condition, TextTest):
        if condition.field_name == "queue":  # earlier rules move it during evaluation
            return None
        return [Trigger(condition.field_name, condition.matcher.needles)]
    if isinstance(condition, HeaderTest) and condition.matcher is not None:
        return [Trigger(f"header:{condition.name.lower()}", condition.matcher.needles)]
    if isinstance(condition, AllOf):  # every child holds: any one child's triggers will do
        options = [t for t in map(triggers, condition.children) if t is not None]
        return max(options, key=_selectivity) if options else None
    if isinstance(condition, AnyOf):  # some child holds: all children's triggers are needed
        found: list[Trigger] = []
        for child in condition.children:
            more = triggers(child)
            if more is None:
                return None
            found.extend(more)
        return found
    return None  # not, size, flags, business hours: cheap, tested on every message


def _selectivity(found: list[Trigger]) -> int:
    """Higher for triggers that fire on fewer messages: whole values, then long literals."""
    score = {"equal": lambda key: 1000, "substring": len, "regex": lambda key: 0}
    return min((score[t.needles.kind](k) for t in found for k in t.needles.keys), default=1000)


class _FieldScan:
    """One field's values, prepared one way, checked against every trigger on them."""

    def __init__(self, source: str, prep: str, regex: bool, case_sensitive: bool):
        self.source = source
        self.prep = prep
        self.regex = regex  # else literal text (values, or text to find in them)
        self.case_sensitive = case_sensitive
        self.equal: dict[str, list[int]] = {}
        self.patterns: dict[str, list[int]] = {_EVERYTHING: []}  # pattern -> rule positions
        self.owners: list[list[int]] = []
        self.search: Any = None
        self.positions: set[int] = set()  # of the rules with a trigger here

    def add(self, needles: Needles, position: int) -> None:
        self.positions.add(position)
        for key in needles.keys:
            if needles.kind == "equal":
                self.equal.setdefault(key, []).append(position)
            else:
                self.patterns.setdefault(key, []).append(position)

    def compile(self) -> list[int]:
        """Build the RE2 set; the positions to test always if it cannot be built."""
        self.owners = list(self.patterns.values())
        if len(self.owners) == 1:
            return []
        options = re2.Options()
        options.log_errors = False
        options.case_sensitive = self.case_sensitive
        options.literal = not self.regex
        options.max_mem = _SET_MEMORY
        search = re2.Set.SearchSet(options)
        try:
            for pattern in self.patterns:
                search.Add(pattern)
            search.Compile()
        except re2.error:
            self.owners = [[]]
            return sorted({p for owners in self.patterns.values() for p in owners})
        self.search = search
        return []

    def fire(self, view: MessageView, found: set[int]) -> None:
        """Add the positions of the rules whose triggers fire on this message to `found`."""
        if self.source.startswith("header:"):
            values = view.header(self.source[7:], self.prep)
        else:
            values = view.values(self.source, self.prep)
        for value in values:
            if self.equal:
                wanted = self.equal.get(value)
                if wanted:
                    found.update(wanted)
            if self.search is not None:
                self._search(value, found)

    def _search(self, value: str, found: set[int]) -> None:
        try:
            hits = self.search.Match(value)
        except UnicodeError:  # text RE2 cannot take: test every rule of this set
            hits = None
        if hits is None or 0 not in hits:
            for owners in self.owners:
                found.update(owners)
            return
        owners = self.owners
        for hit in hits:
            found.update(owners[hit])


class RuleIndex:
    """The rules of one walk (by position), findable by what a message contains."""

    def __init__(
        self, conditions: Sequence[Condition], min_rules_per_scan: int = MIN_RULES_PER_SCAN
    ):
        found = {position: triggers(condition) for position, condition in enumerate(conditions)}
        always = {position for position, some in found.items() if some is None}
        while True:
            scans = _scans({p: t for p, t in found.items() if p not in always and t is not None})
            few = [scan.positions for scan in scans if len(scan.positions) < min_rules_per_scan]
            if not few:
                break
            always.update(*few)
        for scan in scans:
            always.update(scan.compile())
        self._always = frozenset(always)
        self._scans = tuple(scans)

    @property
    def narrows(self) -> bool:
        """Can a message rule out any rule? (Else every rule is a candidate.)"""
        return bool(self._scans)

    def candidates(self, view: MessageView) -> list[int]:
        """Positions of the rules that may match the message, in order."""
        found = set(self._always)
        for scan in self._scans:
            scan.fire(view, found)
        return sorted(found)


def _scans(found: dict[int, list[Trigger]]) -> list[_FieldScan]:
    """The triggers of the rules at each position, grouped into one scan per field."""
    scans: dict[tuple[str, str, bool, bool], _FieldScan] = {}
    for position, some in found.items():
        for trigger in some:
            needles = trigger.needles
            key = (trigger.source, needles.prep, needles.kind == "regex", needles.case_sensitive)
            scan = scans.get(key) or scans.setdefault(key, _FieldScan(*key))
            scan.add(needles, position)
    return list(scans.values())
