"""`when` conditions as compiled nodes, tested against a MessageView per message.

Each node answers `test` (fast, for routing) and `explain` (a Trace saying why, for
`maildesk rules test`). when.py builds them from a validated `when`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from maildesk.common.business_hours import Calendar
from maildesk.rules.message_view import MessageView, header_key
from maildesk.rules.text_match import Matcher

_SHOW = 70  # characters of a value shown when explaining a condition


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

    def __post_init__(self) -> None:
        prep = self.matcher.prep if self.matcher else "raw"
        self._key = (header_key(self.name), prep)

    def test(self, view: MessageView) -> bool:
        values = view._prepared.get(self._key)  # as TextTest.test: the cached values first
        if values is None:
            values = view.header(self.name, self._key[1])
        if self.matcher is None:
            return bool(values) == self.exists
        find = self.matcher.find
        # A plain loop: this runs for every rule and message, and any(<generator>) is slower.
        for value in values:  # noqa: SIM110
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
