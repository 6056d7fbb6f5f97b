"""`then` actions: resolved at load from the validated file, applied to a Draft in rule order.

Single-valued fields (queue, priority, assignee, sla, auto_reply, language, spam,
ignore) take the value of the last matching rule that sets them; lists (tags,
watchers, cc, notify) collect from every matching rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maildesk.rules.definitions import NONE, STRATEGIES, Agent

LIST_FIELDS = ("tags", "watchers", "cc", "notify")
# What a rule may still change on a follow-up: raise the priority, move, tag, tell someone.
FOLLOW_UP_FIELDS = ("queue", "priority", "tags", "notify")


@dataclass(frozen=True)
class Assign:
    """An assignment: a named agent's address, a strategy, or nobody."""

    kind: str  # "agent", "strategy" or "none"
    value: str | None = None

    def __str__(self) -> str:
        return self.value or NONE


@dataclass(frozen=True)
class Action:
    """Set (or, for lists, add to) one field."""

    field: str
    value: Any

    def __str__(self) -> str:
        shown = ", ".join(map(str, self.value)) if isinstance(self.value, list) else self.value
        verb = "add" if self.field in LIST_FIELDS else "set"
        return f"{verb} {self.field} {shown if shown is not None else NONE}"


@dataclass
class Draft:
    """The routing being built up; `set_by` records who set each field last."""

    values: dict[str, Any] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=lambda: {f: [] for f in LIST_FIELDS})
    set_by: dict[str, str] = field(default_factory=dict)

    def apply(self, action: Action, source: str) -> None:
        if action.field in LIST_FIELDS:
            target = self.lists[action.field]
            target.extend(v for v in action.value if v not in target)
            self.set_by[action.field] = ", ".join(
                dict.fromkeys(
                    [*filter(None, self.set_by.get(action.field, "").split(", ")), source]
                )
            )
        else:
            self.values[action.field] = action.value
            self.set_by[action.field] = source

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def compile_actions(spec: Any, written: dict[str, Any], agents: dict[str, Agent]) -> list[Action]:
    """The actions of a validated `then` (or default route), in the order `written` has them."""
    actions = []
    for key in written:
        if key == "calendar":  # the default route's calendar is not an action
            continue
        actions.append(Action(key, _value(key, spec.get(key), agents)))
    return actions


def _value(key: str, value: Any, agents: dict[str, Agent]) -> Any:
    if key == "assignee":
        if value is None:
            return Assign("none")
        if value in STRATEGIES:
            return Assign("strategy", value)
        return Assign("agent", agent_address(value, agents))
    if key == "tags":
        return [tag.strip() for tag in value]
    if key in ("watchers", "notify"):
        return [agent_address(v, agents) or v for v in value]
    return value


def agent_address(name: str, agents: dict[str, Agent]) -> str | None:
    """An agent's address by key or address."""
    if name in agents:
        return agents[name].address
    lowered = name.lower()
    return next((a.address for a in agents.values() if a.address == lowered), None)
