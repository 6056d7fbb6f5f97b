"""Load rules.yaml into a RuleSet, reporting every problem at once with its line.

The file is read in one pass per section; a mistake in one place does not hide the
mistakes after it. Nothing half-loaded is ever returned: either a complete RuleSet,
or RulesError with the full list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maildesk.common.domain import Priority
from maildesk.common.errors import Problem, RulesError
from maildesk.common.yamlfile import YamlDocument, load_yaml, load_yaml_file
from maildesk.rules.actions import DEFAULT_KEYS, Action, ActionEnv, compile_actions
from maildesk.rules.calendars import fill_default_calendar, load_calendars, load_sla
from maildesk.rules.conditions import ConditionEnv, compile_when
from maildesk.rules.definitions import Agent, Queue
from maildesk.rules.engine import CompiledRule, RuleSet
from maildesk.rules.schema import (
    AGENT_KEYS,
    QUEUE_KEYS,
    RULE_KEYS,
    SUPPORTED_VERSIONS,
    TOP_KEYS,
    Scope,
)


def load_rules(path: Path) -> RuleSet:
    """Load and validate rules.yaml; raise RulesError listing every problem."""
    doc, problems = load_yaml_file(path)
    if problems:
        raise RulesError(str(path), problems)
    return build_rules(doc)


def parse_rules(text: str, file: str = "rules.yaml") -> RuleSet:
    """Like load_rules, from text (for tests, benchmarks and `rules check -`)."""
    doc, problems = load_yaml(text, file)
    if problems:
        raise RulesError(file, problems)
    return build_rules(doc)


def build_rules(doc: YamlDocument) -> RuleSet:
    """A RuleSet from a parsed document, or RulesError with every problem found."""
    problems: list[Problem] = []
    top = Scope(doc, problems, "rules.yaml")
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise RulesError(doc.file, [doc.problem((), "rules.yaml must be a mapping of sections")])
    top.unknown_keys((), data, TOP_KEYS)
    _version(top, data)
    calendars = load_calendars(top, data.get("calendars"))
    queue_names = set(_section(top, data, "queues"))
    agents = _agents(top, _section(top, data, "agents"), queue_names)
    queues = _queues(top, _section(top, data, "queues"), agents)
    default = _section(top, data, "default")
    default_scope = top.within("default")
    default_calendar = _default_calendar(default_scope, default, calendars)
    policies, by_priority = load_sla(top, data.get("sla"), calendars)
    policies = fill_default_calendar(top, policies, calendars, default_calendar)
    env = ActionEnv(set(queues), agents, set(policies) | _policy_names(data))
    default_actions = _default_route(default_scope, default, env)
    cond_env = ConditionEnv(calendars, default_calendar)
    rules = _rules(top, data.get("rules"), env, cond_env)
    if problems:
        raise RulesError(doc.file, sorted(problems, key=lambda p: p.line or 0))
    return RuleSet(
        source=doc.file,
        default_queue=str(default["queue"]),
        default_priority=Priority(str(default["priority"]).lower()),
        default_auto_reply=_auto_reply(default),
        default_language=str(default.get("language", "en")).lower(),
        default_calendar=default_calendar,
        default_actions=tuple(
            a
            for a in default_actions
            if a.field not in ("queue", "priority", "auto_reply", "language")
        ),
        queues=queues,
        agents=agents,
        calendars=calendars,
        sla_policies=policies,
        sla_by_priority=by_priority,
        rules=tuple(rules),
    )


def _section(scope: Scope, data: dict[str, Any], key: str) -> dict[Any, Any]:
    value = data.get(key)
    if value is None:
        return {}
    return scope.mapping((key,), value, f"'{key}'") or {}


def _policy_names(data: dict[str, Any]) -> set[str]:
    """Policy names as written, so a broken policy is not also 'unknown' where it is used."""
    sla = data.get("sla")
    policies = sla.get("policies") if isinstance(sla, dict) else None
    return {str(k) for k in policies} if isinstance(policies, dict) else set()


def _version(scope: Scope, data: dict[str, Any]) -> None:
    version = data.get("version")
    if version is None:
        scope.error(("version",), "missing 'version'", " — add version: 1 at the top")
    elif version not in SUPPORTED_VERSIONS:
        scope.error(
            ("version",),
            f"unsupported version {version!r}",
            f" — this maildesk reads version {', '.join(map(str, SUPPORTED_VERSIONS))}",
        )


def _agents(scope: Scope, raw: dict[Any, Any], queue_names: set[str]) -> dict[str, Agent]:
    agents: dict[str, Agent] = {}
    seen: dict[str, str] = {}
    for key, spec in raw.items():
        inner = scope.within(f"agent '{key}'")
        path = ("agents", key)
        body = inner.mapping(path, spec, "an agent")
        if body is None:
            continue
        inner.unknown_keys(path, body, AGENT_KEYS)
        address = None
        if "address" not in body:
            inner.error(path, "missing 'address'", " — every agent needs an email address")
        else:
            address = inner.address((*path, "address"), body["address"], "address")
        queues = _names(inner, (*path, "queues"), body.get("queues", []), queue_names, "queue")
        away = inner.flag((*path, "away"), body.get("away", False), "away")
        if address is not None and address in seen:
            inner.error((*path, "address"), f"address {address} is also agent '{seen[address]}'")
            address = None
        if address is None or queues is None or away is None:
            # A stand-in keeps references to this agent from being reported as well.
            agents[str(key)] = Agent(str(key), f"{key}@invalid.invalid", str(key))
            continue
        seen[address] = str(key)
        agents[str(key)] = Agent(
            key=str(key),
            address=address,
            name=str(body.get("name", key)),
            queues=tuple(queues),
            level=str(body.get("level", "L1")),
            away=away,
        )
    return agents


def _names(
    scope: Scope, path: tuple[Any, ...], value: Any, known: Any, what: str
) -> list[str] | None:
    """A list of references to `known` names (queues of an agent, agents of a queue)."""
    if not isinstance(value, list):
        scope.error(path, f"a list of {what}s is expected, e.g. [{', '.join(list(known)[:2])}]")
        return None
    result = []
    for index, item in enumerate(value):
        found = scope.reference((*path, index), item, sorted(known), what, f"{what}s defined")
        if found is None:
            return None
        result.append(found)
    return result


def _queues(scope: Scope, raw: dict[Any, Any], agents: dict[str, Agent]) -> dict[str, Queue]:
    queues: dict[str, Queue] = {}
    for name, spec in raw.items():
        inner = scope.within(f"queue '{name}'")
        path = ("queues", name)
        body = inner.mapping(path, spec if spec is not None else {}, "a queue")
        if body is None:
            continue
        inner.unknown_keys(path, body, QUEUE_KEYS)
        listed = _names(inner, (*path, "agents"), body.get("agents", []), agents, "agent")
        escalation = body.get("escalation")
        if escalation is not None and escalation not in agents and escalation not in raw:
            choices = sorted({*agents, *map(str, raw)})
            inner.reference(
                (*path, "escalation"), escalation, choices, "escalation target", "agents and queues"
            )
            escalation = None
        # An agent joins a queue by being listed there or by listing it; queue order first.
        members = [*(listed or []), *(a.key for a in agents.values() if str(name) in a.queues)]
        queues[str(name)] = Queue(
            name=str(name),
            agents=tuple(dict.fromkeys(members)),
            escalation=str(escalation) if escalation is not None else None,
            language=str(body["language"]).lower() if body.get("language") else None,
        )
    if not queues:
        scope.error(("queues",), "no queues defined", " — add at least the default route's queue")
    return queues


def _default_calendar(
    scope: Scope, default: dict[Any, Any], calendars: dict[str, Any]
) -> str | None:
    if "calendar" not in default:
        return None
    return scope.reference(
        ("default", "calendar"), default["calendar"], calendars, "calendar", "defined"
    )


def _default_route(scope: Scope, default: dict[Any, Any], env: ActionEnv) -> list[Action]:
    """The default route every message starts from: a queue and a priority are required."""
    if not default:
        scope.error(
            ("default",),
            "no default route",
            " — add default: {queue: <queue>, priority: normal}, so every message gets a queue",
        )
        return []
    for key in ("queue", "priority"):
        if key not in default:
            scope.error(
                ("default",),
                f"missing '{key}'",
                " — the default route needs a queue and a priority",
            )
    return compile_actions(scope, ("default",), default, env, DEFAULT_KEYS) or []


def _auto_reply(default: dict[Any, Any]) -> str | None:
    reply = default.get("auto_reply", "ack")
    return None if reply in (None, False) or str(reply).lower() == "none" else str(reply)


def _rules(scope: Scope, raw: Any, env: ActionEnv, cond_env: ConditionEnv) -> list[CompiledRule]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        scope.error(("rules",), "'rules' must be a list (each rule starts with '- name:')")
        return []
    rules: list[CompiledRule] = []
    names: dict[str, int] = {}
    for index, spec in enumerate(raw):
        path = ("rules", index)
        name = spec.get("name") if isinstance(spec, dict) else None
        label = f"rule '{name}'" if isinstance(name, str) and name else f"rule #{index + 1}"
        inner = scope.within(label)
        if isinstance(name, str) and name.strip() in names:
            inner.error(
                (*path, "name"),
                f"duplicate rule name (also rule #{names[name.strip()]})",
                " — names must be unique: tickets record the rules that fired by name",
            )
        elif isinstance(name, str):
            names[name.strip()] = index + 1
        rule = _rule(inner, path, spec, env, cond_env)
        if rule is not None:
            rules.append(rule)
    return rules


def _rule(
    scope: Scope, path: tuple[Any, ...], spec: Any, env: ActionEnv, cond_env: ConditionEnv
) -> CompiledRule | None:
    body = scope.mapping(path, spec, "a rule")
    if body is None:
        return None
    scope.unknown_keys(path, body, RULE_KEYS)
    raw_name = body.get("name")
    name = (
        scope.text((*path, "name"), raw_name, "the rule's name") if raw_name is not None else None
    )
    if raw_name is None or (name is not None and not name.strip()):
        scope.error(
            path, "missing 'name'", " — every rule needs a unique name, e.g. name: vip-customers"
        )
    for key in ("when", "then"):
        if key not in body:
            scope.error(path, f"missing '{key}'")
    condition = (
        compile_when(scope, (*path, "when"), body["when"], cond_env) if "when" in body else None
    )
    actions = compile_actions(scope, (*path, "then"), body["then"], env) if "then" in body else None
    flags = {
        key: scope.flag((*path, key), body.get(key, default), key)
        for key, default in (("stop", False), ("follow_ups", False), ("enabled", True))
    }
    if condition is None or actions is None or not isinstance(name, str) or None in flags.values():
        return None
    return CompiledRule(
        name=name.strip(),
        line=scope.doc.line_of(path),
        condition=condition,
        actions=tuple(actions),
        stop=bool(flags["stop"]),
        follow_ups=bool(flags["follow_ups"]),
        enabled=bool(flags["enabled"]),
        description=str(body.get("description", "")),
    )
