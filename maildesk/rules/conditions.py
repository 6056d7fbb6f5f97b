"""`when` conditions: compiled once at load, tested against a MessageView per message.

A condition is a mapping of one field to one operator (`subject: {contains: urgent}`),
or a combinator (`all`, `any`, `not`). Several keys in one mapping must all hold.
Matching is case-insensitive unless `case_sensitive: true`; regexes use RE2, whose
matching time is linear in the input, so no message can make a rule hang.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import re2

from maildesk.common.business_hours import Calendar
from maildesk.common.yamlfile import Path_, did_you_mean
from maildesk.intake.message import ParsedMessage
from maildesk.rules.definitions import RuleFacts
from maildesk.rules.schema import Scope, describe, parse_size

BODY_LIMIT = 1024 * 1024  # body conditions read the first 1 MiB of text
_SHOW = 70  # characters of a value shown when explaining a condition

TEXT_OPERATORS = ("is", "in", "contains", "contains_word", "starts_with", "ends_with", "matches")
ADDRESS_OPERATORS = (*TEXT_OPERATORS, "domain")
SIZE_OPERATORS = ("greater_than", "less_than")
COMBINATORS = ("all", "any", "not")
_RECIPIENT_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to")


class MessageView:
    """A message's fields as conditions see them; each is computed at most once."""

    def __init__(self, msg: ParsedMessage, facts: RuleFacts, agent_addresses: frozenset[str]):
        self.msg = msg
        self.facts = facts
        self.agent_addresses = agent_addresses
        self._prepared: dict[tuple[str, str], list[Any]] = {}
        self._open: dict[str, bool] = {}
        # The queue chosen so far; the engine moves it as matching rules set a queue.
        self.current_queue: str | None = None

    def values(self, name: str, prep: str) -> list[Any]:
        """Text field `name`'s values, prepared as a matcher wants them (see PREPARE)."""
        key = (name, prep)
        try:
            return self._prepared[key]
        except KeyError:
            pass
        result = [PREPARE[prep](v) for v in getattr(self, f"f_{name}")]
        if name != "queue":  # the queue moves during evaluation, so it is never kept
            self._prepared[key] = result
        return result

    def header(self, name: str, prep: str) -> list[Any]:
        key = ("header:" + name.lower(), prep)
        try:
            return self._prepared[key]
        except KeyError:
            pass
        result = [PREPARE[prep](v) for v in self.msg.header_all(name)]
        self._prepared[key] = result
        return result

    def is_open(self, name: str, calendar: Calendar) -> bool:
        """Is calendar `name` open at facts.now (asked once per message)?"""
        if name not in self._open:
            self._open[name] = calendar.is_open(self.facts.now)
        return self._open[name]

    @cached_property
    def f_from(self) -> list[str]:
        return [self.msg.from_addr] if self.msg.from_addr else []

    @cached_property
    def f_from_name(self) -> list[str]:
        return [self.msg.sender.name] if self.msg.sender and self.msg.sender.name else []

    @cached_property
    def f_to(self) -> list[str]:
        return [a.address for a in self.msg.to]

    @cached_property
    def f_cc(self) -> list[str]:
        return [a.address for a in self.msg.cc]

    @cached_property
    def f_recipient(self) -> list[str]:
        # Bcc'd and aliased mail names the support address only in delivery headers.
        found = [a.address for a in self.msg.recipients]
        for name in _RECIPIENT_HEADERS:
            for value in self.msg.header_all(name):
                found.extend(v.strip("<> ").lower() for v in value.split(",") if "@" in v)
        return list(dict.fromkeys(found))

    @cached_property
    def f_reply_to(self) -> list[str]:
        return [a.address for a in self.msg.reply_to]

    @cached_property
    def f_subject(self) -> list[str]:
        return [self.msg.subject]

    @cached_property
    def f_body(self) -> list[str]:
        return [self.msg.text[:BODY_LIMIT]]

    @cached_property
    def f_attachment_type(self) -> list[str]:
        return [a.content_type for a in self.msg.attachments]

    @cached_property
    def f_attachment_name(self) -> list[str]:
        return [a.filename for a in self.msg.attachments]

    @cached_property
    def f_mailbox(self) -> list[str]:
        return [self.facts.mailbox] if self.facts.mailbox else []

    @cached_property
    def f_mailbox_queue(self) -> list[str]:
        return [self.facts.mailbox_queue] if self.facts.mailbox_queue else []

    @cached_property
    def f_language(self) -> list[str]:
        return [self.facts.language] if self.facts.language else []

    @property
    def f_queue(self) -> list[str]:
        return [self.current_queue] if self.current_queue else []


# Text fields and whether their values are addresses (which allows `domain`).
TEXT_FIELDS: dict[str, bool] = {
    "from": True,
    "from_name": False,
    "to": True,
    "cc": True,
    "recipient": True,
    "reply_to": True,
    "subject": False,
    "body": False,
    "attachment_type": False,
    "attachment_name": False,
    "mailbox": False,
    "mailbox_queue": False,
    "queue": False,
    "language": False,
}
FLAG_FIELDS = ("has_attachment", "sender_is_agent")
OTHER_FIELDS = ("header", "size", "business_hours")
ALL_KEYS = (*TEXT_FIELDS, *FLAG_FIELDS, *OTHER_FIELDS, *COMBINATORS)


@dataclass
class Trace:
    """How one condition came out for one message, and why."""

    condition: str
    result: bool
    detail: str = ""
    children: list[Trace] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "condition": self.condition,
            "result": self.result,
            "detail": self.detail,
        }
        if self.children:
            data["children"] = [c.to_dict() for c in self.children]
        return data


class Condition(Protocol):
    description: str

    def test(self, view: MessageView) -> bool: ...

    def explain(self, view: MessageView) -> Trace: ...


# --- matchers: one compiled test of one text value --------------------------------------


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
class Matcher:
    """Finds what an operator looks for in one prepared value (see PREPARE)."""

    find: Callable[[Any], str | None]
    prep: str


def _regex(pattern: str, case_sensitive: bool) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    options.max_mem = 8 << 20  # bounds the compiled program, so a regex cannot eat memory
    return re2.compile(pattern, options)


def regex_error(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def make_matcher(op: str, values: list[str], case_sensitive: bool) -> Matcher:
    """A matcher for text operator `op`; `matches` patterns must already be valid."""
    fold = "raw" if case_sensitive else "folded"
    needles = list(values) if case_sensitive else [v.casefold() for v in values]
    if op in ("is", "in"):
        wanted = frozenset(needles)
        return Matcher(lambda v: v if v in wanted else None, fold)
    if op == "contains":

        def contains(value: str) -> str | None:
            for needle in needles:
                if needle in value:
                    return needle
            return None

        return Matcher(contains, fold)
    if op == "starts_with":
        return Matcher(lambda v: _first(needles, v.startswith), fold)
    if op == "ends_with":
        return Matcher(lambda v: _first(needles, v.endswith), fold)
    if op == "domain":
        domains = [d.casefold().lstrip("@") for d in values]
        return Matcher(lambda v: _domain_match(v, domains), "folded")
    if op == "contains_word":
        return _word_matcher(values, "words" if case_sensitive else "folded_words")
    if op == "matches":
        patterns = [_regex(p, case_sensitive) for p in values]
        return Matcher(lambda v: _first_match(patterns, v), "raw")
    raise ValueError(f"unknown operator {op}")


def _first(needles: list[str], test: Callable[[str], bool]) -> str | None:
    for needle in needles:
        if test(needle):
            return needle
    return None


def _word_matcher(values: list[str], prep: str) -> Matcher:
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

    return Matcher(find, prep)


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


# --- condition nodes ----------------------------------------------------------------------


def _show(values: Sequence[str], name: str) -> str:
    if not values:
        return f"the message has no {name}"
    if name == "body":
        return f"body has {len(values[0])} characters"
    shown = ", ".join(repr(v if len(v) <= _SHOW else v[: _SHOW - 1] + "…") for v in values[:5])
    more = f" and {len(values) - 5} more" if len(values) > 5 else ""
    return f"{name} is {shown}{more}"


@dataclass
class TextTest:
    """One text field against one operator; any of the field's values may match."""

    field_name: str
    matcher: Matcher
    description: str

    def __post_init__(self) -> None:
        self._key = (self.field_name, self.matcher.prep)
        self._find = self.matcher.find

    def test(self, view: MessageView) -> bool:
        # The hottest code in maildesk with many rules: cached values, a plain loop.
        values = view._prepared.get(self._key)
        if values is None:
            values = view.values(self.field_name, self.matcher.prep)
        find = self._find
        for value in values:  # noqa: SIM110 - see above
            if find(value) is not None:
                return True
        return False

    def explain(self, view: MessageView) -> Trace:
        for value in view.values(self.field_name, self.matcher.prep):
            found = self.matcher.find(value)
            if found is not None:
                return Trace(self.description, True, f"found {found!r} in {self.field_name}")
        shown = view.values(self.field_name, "raw")
        return Trace(self.description, False, _show(shown, self.field_name))


@dataclass
class HeaderTest:
    """A header by name: present at all (`exists`) or one of its values matches."""

    name: str
    matcher: Matcher | None  # None: test presence only
    exists: bool
    description: str

    def test(self, view: MessageView) -> bool:
        if self.matcher is None:
            return bool(view.header(self.name, "raw")) == self.exists
        find = self.matcher.find
        # A plain loop: this runs for every rule and message, and any(<generator>) is slower.
        for value in view.header(self.name, self.matcher.prep):  # noqa: SIM110
            if find(value) is not None:
                return True
        return False

    def explain(self, view: MessageView) -> Trace:
        shown = view.header(self.name, "raw")
        result = self.test(view)
        if not shown:
            return Trace(self.description, result, f"no {self.name} header")
        return Trace(self.description, result, _show(shown, self.name))


@dataclass
class SizeTest:
    op: str
    limit: int
    description: str

    def test(self, view: MessageView) -> bool:
        size = view.msg.size
        return size > self.limit if self.op == "greater_than" else size < self.limit

    def explain(self, view: MessageView) -> Trace:
        return Trace(self.description, self.test(view), f"message is {view.msg.size} bytes")


@dataclass
class FlagTest:
    field_name: str
    expected: bool
    description: str

    def actual(self, view: MessageView) -> bool:
        if self.field_name == "has_attachment":
            return bool(view.msg.attachments)
        return view.msg.from_addr in view.agent_addresses

    def test(self, view: MessageView) -> bool:
        return self.actual(view) == self.expected

    def explain(self, view: MessageView) -> Trace:
        if self.field_name == "has_attachment":
            n = len(view.msg.attachments)
            detail = f"{n} attachment(s)"
        else:
            who = "an agent" if self.actual(view) else "not an agent"
            detail = f"sender {view.msg.from_addr or '(none)'} is {who}"
        return Trace(self.description, self.test(view), detail)


@dataclass
class BusinessHoursTest:
    calendar_name: str
    calendar: Calendar
    expected: bool
    description: str

    def test(self, view: MessageView) -> bool:
        return view.is_open(self.calendar_name, self.calendar) == self.expected

    def explain(self, view: MessageView) -> Trace:
        local = view.facts.now.astimezone(self.calendar.tz)
        state = "open" if view.is_open(self.calendar_name, self.calendar) else "closed"
        detail = f"{local:%a %Y-%m-%d %H:%M} {self.calendar.timezone}: {self.calendar_name} {state}"
        return Trace(self.description, self.test(view), detail)


@dataclass
class AllOf:
    children: list[Condition]
    description: str = "all of"

    def __post_init__(self) -> None:
        self._tests = tuple(c.test for c in self.children)

    def test(self, view: MessageView) -> bool:
        for test in self._tests:  # noqa: SIM110 - a plain loop is faster than all(<generator>)
            if not test(view):
                return False
        return True

    def explain(self, view: MessageView) -> Trace:
        traces = [c.explain(view) for c in self.children]
        failed = sum(not t.result for t in traces)
        detail = "all hold" if not failed else f"{failed} of {len(traces)} do not hold"
        return Trace(self.description, not failed, detail, traces)


@dataclass
class AnyOf:
    children: list[Condition]
    description: str = "any of"

    def __post_init__(self) -> None:
        self._tests = tuple(c.test for c in self.children)

    def test(self, view: MessageView) -> bool:
        for test in self._tests:  # noqa: SIM110 - a plain loop is faster than any(<generator>)
            if test(view):
                return True
        return False

    def explain(self, view: MessageView) -> Trace:
        traces = [c.explain(view) for c in self.children]
        held = sum(t.result for t in traces)
        detail = f"{held} of {len(traces)} hold" if held else "none holds"
        return Trace(self.description, bool(held), detail, traces)


@dataclass
class Not:
    child: Condition
    description: str = "not"

    def test(self, view: MessageView) -> bool:
        return not self.child.test(view)

    def explain(self, view: MessageView) -> Trace:
        inner = self.child.explain(view)
        return Trace(self.description, not inner.result, "", [inner])


# --- compiling `when` from YAML -----------------------------------------------------------


@dataclass
class ConditionEnv:
    """What conditions may refer to: calendars, and the default one."""

    calendars: dict[str, Calendar]
    default_calendar: str | None


def compile_when(scope: Scope, path: Path_, raw: Any, env: ConditionEnv) -> Condition | None:
    """A mapping of conditions (all must hold) -> one Condition; None after problems."""
    body = scope.mapping(path, raw, "'when'")
    if body is None:
        return None
    if not body:
        scope.error(path, "'when' has no conditions", " — add at least one, e.g. subject: {...}")
        return None
    parts = []
    ok = True
    for key, value in body.items():
        part = _compile_key(scope, (*path, key), str(key), value, env)
        if part is None:
            ok = False
        else:
            parts.append(part)
    if not ok:
        return None
    return parts[0] if len(parts) == 1 else AllOf(parts)


def _compile_key(
    scope: Scope, path: Path_, key: str, value: Any, env: ConditionEnv
) -> Condition | None:
    if key in ("all", "any"):
        return _combine(scope, path, key, value, env)
    if key == "not":
        inner = compile_when(scope, path, value, env)
        return Not(inner) if inner is not None else None
    if key in TEXT_FIELDS:
        return _text_test(scope, path, key, value)
    if key == "header":
        return _header_test(scope, path, value)
    if key == "size":
        return _size_test(scope, path, value)
    if key in FLAG_FIELDS:
        flag = scope.flag(path, value, key)
        return None if flag is None else FlagTest(key, flag, f"{key} is {str(flag).lower()}")
    if key == "business_hours":
        return _business_hours(scope, path, value, env)
    hint = did_you_mean(key, ALL_KEYS) or f" — conditions are: {', '.join(ALL_KEYS)}"
    scope.error(path, f"unknown condition '{key}'", hint)
    return None


def _combine(
    scope: Scope, path: Path_, key: str, value: Any, env: ConditionEnv
) -> Condition | None:
    if not isinstance(value, list) or not value:
        scope.error(path, f"'{key}' needs a non-empty list of conditions, not {describe(value)}")
        return None
    children = [compile_when(scope, (*path, i), item, env) for i, item in enumerate(value)]
    if any(c is None for c in children):
        return None
    kept = [c for c in children if c is not None]
    return AllOf(kept) if key == "all" else AnyOf(kept)


def _operator(
    scope: Scope, path: Path_, subject: str, body: dict[Any, Any], allowed: Sequence[str]
) -> tuple[str, Any] | None:
    """The one operator in `body` (besides modifiers), checked against `allowed`."""
    ops = [k for k in body if k not in ("case_sensitive", "name")]
    if len(ops) != 1:
        if not ops:
            scope.error(path, f"'{subject}' needs an operator", f" — one of {', '.join(allowed)}")
        else:
            scope.error(
                path,
                f"'{subject}' has several operators ({', '.join(map(str, ops))})",
                " — give one per condition and combine them with all:/any:",
            )
        return None
    op = str(ops[0])
    if op not in allowed:
        hint = did_you_mean(op, allowed) or f" — use one of {', '.join(allowed)}"
        if op == "domain":
            hint = " — 'domain' works on address fields: from, to, cc, recipient, reply_to"
        scope.error((*path, op), f"unknown operator '{op}' for '{subject}'", hint)
        return None
    return op, body[op]


def _text_values(scope: Scope, path: Path_, op: str, value: Any) -> list[str] | None:
    if op == "is" and isinstance(value, list):
        scope.error(path, "'is' takes one value", " — use in: [a, b] to accept any of several")
        return None
    if op == "in" and not isinstance(value, list):
        scope.error(path, "'in' takes a list of values", f" — write in: [{value}] or is: {value}")
        return None
    values = scope.texts(path, value, f"the value of '{op}'")
    if values is None:
        return None
    if op == "matches":
        for index, pattern in enumerate(values):
            where = (*path, index) if isinstance(value, list) else path
            try:
                _regex(pattern, True)
            except re2.error as exc:
                scope.error(
                    where,
                    f"invalid regex {pattern!r}: {regex_error(exc)}",
                    " — RE2 syntax: no backreferences or lookaround",
                )
                return None
    return values


def _modifiers(scope: Scope, path: Path_, body: dict[Any, Any]) -> bool | None:
    if "case_sensitive" not in body:
        return False
    return scope.flag((*path, "case_sensitive"), body["case_sensitive"], "case_sensitive")


def _describe(subject: str, op: str, values: list[str], case_sensitive: bool) -> str:
    shown = repr(values[0]) if len(values) == 1 and op != "in" else repr(values)
    return f"{subject} {op} {shown}" + (" (case-sensitive)" if case_sensitive else "")


def _text_test(scope: Scope, path: Path_, key: str, value: Any) -> Condition | None:
    body = scope.mapping(path, value, f"'{key}'")
    if body is None:
        return None
    allowed = ADDRESS_OPERATORS if TEXT_FIELDS[key] else TEXT_OPERATORS
    found = _operator(scope, path, key, body, allowed)
    case_sensitive = _modifiers(scope, path, body)
    if found is None or case_sensitive is None:
        return None
    if "name" in body:
        scope.error((*path, "name"), f"'name' is only for header conditions, not '{key}'")
        return None
    op, raw = found
    values = _text_values(scope, (*path, op), op, raw)
    if values is None:
        return None
    matcher = make_matcher(op, values, case_sensitive)
    return TextTest(key, matcher, _describe(key, op, values, case_sensitive))


def _header_test(scope: Scope, path: Path_, value: Any) -> Condition | None:
    body = scope.mapping(path, value, "'header'")
    if body is None:
        return None
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        scope.error(
            path,
            "'header' needs the header's name",
            " — e.g. header: {name: X-Priority, in: ['1', '2']}",
        )
        return None
    found = _operator(scope, path, f"header {name}", body, (*TEXT_OPERATORS, "exists"))
    case_sensitive = _modifiers(scope, path, body)
    if found is None or case_sensitive is None:
        return None
    op, raw = found
    if op == "exists":
        flag = scope.flag((*path, op), raw, "exists")
        if flag is None:
            return None
        return HeaderTest(name, None, flag, f"header {name} exists: {str(flag).lower()}")
    values = _text_values(scope, (*path, op), op, raw)
    if values is None:
        return None
    matcher = make_matcher(op, values, case_sensitive)
    return HeaderTest(name, matcher, True, _describe(f"header {name}", op, values, case_sensitive))


def _size_test(scope: Scope, path: Path_, value: Any) -> Condition | None:
    body = scope.mapping(path, value, "'size'")
    if body is None:
        return None
    found = _operator(scope, path, "size", body, SIZE_OPERATORS)
    if found is None:
        return None
    op, raw = found
    limit = parse_size(raw)
    if limit is None:
        scope.error(
            (*path, op),
            f"size {describe(raw)} is not a size",
            " — e.g. 500KB, 10MB or 12345 (bytes)",
        )
        return None
    return SizeTest(op, limit, f"size {op} {raw}")


def _business_hours(scope: Scope, path: Path_, value: Any, env: ConditionEnv) -> Condition | None:
    """`business_hours: true|false` on the default calendar, or a calendar's name."""
    if isinstance(value, bool):
        if env.default_calendar is None:
            scope.error(
                path,
                "'business_hours' needs a calendar",
                " — define calendars: and set default: {calendar: <name>}, or name one here",
            )
            return None
        name, expected = env.default_calendar, value
    else:
        found = scope.reference(path, value, env.calendars, "calendar", "defined")
        if found is None:
            return None
        name, expected = found, True
    word = "open" if expected else "closed"
    return BusinessHoursTest(name, env.calendars[name], expected, f"business hours ({name}) {word}")
