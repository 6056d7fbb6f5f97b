"""Load rules.yaml into a RuleSet, reporting every problem at once with its line.

The file is validated as a whole (document.py) before anything is compiled: either
a complete RuleSet comes back, or RulesError with the full list of problems.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from maildesk.common.errors import RulesError
from maildesk.common.yamlfile import YamlDocument, load_yaml, load_yaml_file
from maildesk.rules.actions import compile_actions
from maildesk.rules.calendars import build_calendars, build_policies
from maildesk.rules.definitions import Agent, Queue
from maildesk.rules.document import AgentSpec, QueueSpec, RuleSpec, validate_document
from maildesk.rules.engine import CompiledRule, RuleSet
from maildesk.rules.when import ConditionEnv, compile_when

# Set from the default route's own fields, not replayed as actions.
_DEFAULT_FIELDS = ("queue", "priority", "auto_reply", "language")


def load_rules(path: Path) -> RuleSet:
    """Load and validate rules.yaml; raise RulesError listing every problem."""
    with _collector_paused():
        doc, problems = load_yaml_file(path)
        if problems:
            raise RulesError(str(path), problems)
        return build_rules(doc)


def parse_rules(text: str, file: str = "rules.yaml") -> RuleSet:
    """Like load_rules, from text (for tests, benchmarks and `rules check -`)."""
    with _collector_paused():
        doc, problems = load_yaml(text, file)
        if problems:
            raise RulesError(file, problems)
        return build_rules(doc)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading makes ~100,000 objects that live on in the RuleSet, none in a reference cycle:
    the cycle collector would walk them again and again for nothing (a third of the load)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_rules(doc: YamlDocument) -> RuleSet:
    """A RuleSet from a parsed document, or RulesError with every problem found."""
    spec = validate_document(doc)
    agents = _agents(spec.agents)
    calendars = build_calendars(spec.calendars)
    default = spec.default
    policies, by_priority = build_policies(spec.sla, calendars, default.calendar)
    env = ConditionEnv(calendars)
    given = default.model_fields_set
    return RuleSet(
        source=doc.file,
        default_queue=default.queue,
        default_priority=default.priority,
        default_auto_reply=default.auto_reply if "auto_reply" in given else "ack",
        default_language=default.language or "en",
        default_calendar=default.calendar,
        default_actions=tuple(
            action
            for action in compile_actions(default, doc.data["default"], agents)
            if action.field not in _DEFAULT_FIELDS
        ),
        queues=_queues(spec.queues, agents),
        agents=agents,
        calendars=calendars,
        sla_policies=policies,
        sla_by_priority=by_priority,
        rules=tuple(
            _rule(rule, doc.data["rules"][index], doc.line_of(("rules", index)), agents, env)
            for index, rule in enumerate(spec.rules)
        ),
    )


def _agents(specs: dict[str, AgentSpec]) -> dict[str, Agent]:
    return {
        key: Agent(
            key=key,
            address=spec.address,
            name=spec.name or key,
            queues=tuple(spec.queues),
            level=spec.level,
            away=spec.away,
        )
        for key, spec in specs.items()
    }


def _queues(specs: dict[str, QueueSpec], agents: dict[str, Agent]) -> dict[str, Queue]:
    queues = {}
    for name, spec in specs.items():
        # An agent joins a queue by being listed there or by listing it; queue order first.
        members = [*spec.agents, *(a.key for a in agents.values() if name in a.queues)]
        queues[name] = Queue(
            name=name,
            agents=tuple(dict.fromkeys(members)),
            escalation=spec.escalation,
            language=spec.language,
            participants=spec.participants,
        )
    return queues


def _rule(
    spec: RuleSpec,
    written: dict[str, Any],
    line: int | None,
    agents: dict[str, Agent],
    env: ConditionEnv,
) -> CompiledRule:
    """A validated rule compiled; `written` is the rule as in the file (for its keys' order)."""
    return CompiledRule(
        name=spec.name,
        line=line,
        condition=compile_when(spec.when, written["when"], env),
        actions=tuple(compile_actions(spec.then, written["then"], agents)),
        stop=spec.stop,
        follow_ups=spec.follow_ups,
        enabled=spec.enabled,
        description=spec.description,
    )
