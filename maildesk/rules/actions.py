"""`then` actions: checked and resolved at load, applied to a Draft in rule order.

Single-valued fields (queue, priority, assignee, sla, auto_reply, language, spam,
ignore) take the value of the last matching rule that sets them; lists (tags,
watchers, cc, notify) collect from every matching rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maildesk.common.yamlfile import Path_, did_you_mean
from maildesk.rules.definitions import STRATEGIES, Agent
from maildesk.rules.schema import Scope

ACTION_KEYS = (
    "queue",
    "priority",
    "assignee",
    "tags",
    "sla",
    "auto_reply",
    "watchers",
    "cc",
    "notify",
    "spam",
    "ignore",
    "language",
)
DEFAULT_KEYS = (
    "queue",
    "priority",
    "assignee",
    "tags",
    "sla",
    "auto_reply",
    "language",
    "calendar",
)
LIST_FIELDS = ("tags", "watchers", "cc", "notify")
# What a rule may still change on a follow-up: raise the priority, move, tag, tell someone.
FOLLOW_UP_FIELDS = ("queue", "priority", "tags", "notify")
NONE = "none"  # `assignee: none`, `sla: none`, `auto_reply: none`


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


@dataclass
class ActionEnv:
    """What actions may refer to."""

    queues: set[str]
    agents: dict[str, Agent]  # by key
    sla_policies: set[str]

    def agent_address(self, name: str) -> str | None:
        """An agent's address by key or address."""
        if name in self.agents:
            return self.agents[name].address
        lowered = name.lower()
        return next((a.address for a in self.agents.values() if a.address == lowered), None)


def compile_actions(
    scope: Scope, path: Path_, raw: Any, env: ActionEnv, allowed: tuple[str, ...] = ACTION_KEYS
) -> list[Action] | None:
    """The actions of a `then` (or the default route); None after problems."""
    body = scope.mapping(path, raw, "'then'" if allowed is ACTION_KEYS else "the default route")
    if body is None:
        return None
    if not body and allowed is ACTION_KEYS:
        scope.error(
            path,
            "'then' has no actions",
            f" — e.g. queue:, priority:, tags: ({', '.join(ACTION_KEYS)})",
        )
        return None
    actions: list[Action] = []
    ok = True
    for key, value in body.items():
        where = (*path, key)
        if key not in allowed:
            hint = did_you_mean(str(key), allowed) or f" — actions are: {', '.join(allowed)}"
            scope.error(where, f"unknown key '{key}'", hint)
            ok = False
            continue
        if key == "calendar":  # the default route's calendar is read by the loader
            continue
        action = _action(scope, where, str(key), value, env)
        if action is None:
            ok = False
        else:
            actions.append(action)
    return actions if ok else None


def _action(scope: Scope, path: Path_, key: str, value: Any, env: ActionEnv) -> Action | None:
    if key == "queue":
        name = scope.reference(path, value, sorted(env.queues), "queue", "queues defined")
        return None if name is None else Action(key, name)
    if key == "priority":
        priority = scope.priority(path, value)
        return None if priority is None else Action(key, priority)
    if key == "assignee":
        assign = _assignee(scope, path, value, env)
        return None if assign is None else Action(key, assign)
    if key == "sla":
        if _is_none(value):
            return Action(key, None)
        name = scope.reference(path, value, sorted(env.sla_policies), "SLA policy", "defined")
        return None if name is None else Action(key, name)
    if key == "auto_reply":
        if _is_none(value):
            return Action(key, None)
        text = scope.text(path, value, "auto_reply")
        return None if text is None else Action(key, text)
    if key in ("spam", "ignore"):
        flag = scope.flag(path, value, key)
        return None if flag is None else Action(key, flag)
    if key == "language":
        text = scope.text(path, value, "language")
        return None if text is None else Action(key, text.lower())
    if key == "tags":
        tags = scope.texts(path, value, "a tag")
        return None if tags is None else Action(key, [t.strip() for t in tags])
    if key == "cc":
        return _addresses(scope, path, value, env, key, agents_allowed=False)
    return _addresses(scope, path, value, env, key, agents_allowed=True)


def _is_none(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str) and value.lower() == NONE)


def _assignee(scope: Scope, path: Path_, value: Any, env: ActionEnv) -> Assign | None:
    if _is_none(value):
        return Assign("none")
    text = scope.text(path, value, "assignee")
    if text is None:
        return None
    if text in STRATEGIES:
        return Assign("strategy", text)
    address = env.agent_address(text)
    if address is not None:
        return Assign("agent", address)
    choices = [*STRATEGIES, *env.agents]
    hint = (
        did_you_mean(text, choices)
        or f" — name an agent ({', '.join(env.agents) or 'none defined'})"
        f" or a strategy ({', '.join(STRATEGIES)})"
    )
    scope.error(path, f"unknown assignee '{text}'", hint)
    return None


def _addresses(
    scope: Scope, path: Path_, value: Any, env: ActionEnv, key: str, *, agents_allowed: bool
) -> Action | None:
    items = scope.texts(path, value, f"an entry of '{key}'")
    if items is None:
        return None
    result = []
    for index, item in enumerate(items):
        where = (*path, index) if isinstance(value, list) else path
        agent = env.agent_address(item) if agents_allowed else None
        if agent is not None:
            result.append(agent)
            continue
        if "@" not in item:
            hint = did_you_mean(item, env.agents) if agents_allowed else ""
            what = "an agent or an email address" if agents_allowed else "an email address"
            scope.error(where, f"'{item}' in '{key}' is not {what}", hint)
            return None
        address = scope.address(where, item, f"an entry of '{key}'")
        if address is None:
            return None
        result.append(address)
    return Action(key, result)
