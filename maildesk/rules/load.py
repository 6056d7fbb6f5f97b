"""Load rules.yaml into a RuleSet. (Foundation: default route, queues and agents.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maildesk.domain import Priority, TicketState
from maildesk.errors import Problem, RulesError
from maildesk.parse import ParsedMessage
from maildesk.rules.model import Agent, Queue, Routing, RuleFacts
from maildesk.yamlfile import YamlDocument, load_yaml_file


@dataclass
class RuleSet:
    """Compiled rules; evaluate() is pure and cheap."""

    source: str
    default_queue: str = "general"
    default_priority: Priority = Priority.NORMAL
    default_auto_reply: str | None = "ack"
    default_language: str = "en"
    queues: dict[str, Queue] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)  # by key

    def agent_by_address(self, address: str) -> Agent | None:
        address = address.lower()
        return next((a for a in self.agents.values() if a.address == address), None)

    def find_agent(self, name_or_address: str) -> Agent | None:
        """An agent by key, address or display name (case-insensitive)."""
        wanted = name_or_address.strip().lower()
        for agent in self.agents.values():
            if wanted in (agent.key.lower(), agent.address, agent.name.lower()):
                return agent
        return None

    def evaluate(
        self,
        msg: ParsedMessage,
        *,
        ticket: TicketState | None,
        facts: RuleFacts,
    ) -> Routing:
        """Routing for a new ticket (ticket is None) or a follow-up."""
        if ticket is not None:
            return Routing()
        return Routing(
            queue=self.default_queue,
            priority=self.default_priority,
            auto_reply=self.default_auto_reply,
            language=self.queue_language(self.default_queue),
        )

    def queue_language(self, queue: str) -> str:
        q = self.queues.get(queue)
        return (q.language if q and q.language else None) or self.default_language


def load_rules(path: Path) -> RuleSet:
    """Load and validate rules.yaml; raise RulesError listing every problem."""
    doc, problems = load_yaml_file(path)
    if problems:
        raise RulesError(str(path), problems)
    data = doc.data or {}
    if not isinstance(data, dict):
        raise RulesError(str(path), [doc.problem((), "rules.yaml must be a mapping")])
    problems = []
    ruleset = RuleSet(source=str(path))
    default = data.get("default") or {}
    if not default.get("queue"):
        problems.append(doc.problem(("default",), "a default route with a queue is required"))
    ruleset.default_queue = str(default.get("queue", "general"))
    try:
        ruleset.default_priority = Priority(str(default.get("priority", "normal")))
    except ValueError:
        problems.append(
            doc.problem(("default", "priority"), "priority must be low, normal, high or urgent")
        )
    reply = default.get("auto_reply", "ack")
    ruleset.default_auto_reply = None if reply in (None, "none", False) else str(reply)
    ruleset.default_language = str(default.get("language", "en"))
    ruleset.agents = _agents(doc, data.get("agents") or {}, problems)
    ruleset.queues = _queues(doc, data.get("queues") or {}, problems)
    if problems:
        raise RulesError(str(path), problems)
    return ruleset


def _agents(doc: YamlDocument, raw: dict[str, Any], problems: list[Problem]) -> dict[str, Agent]:
    agents = {}
    for key, spec in raw.items():
        if not isinstance(spec, dict) or "address" not in spec:
            problems.append(doc.problem(("agents", key), f"agent '{key}' needs an address"))
            continue
        agents[key] = Agent(
            key=str(key),
            address=str(spec["address"]).lower(),
            name=str(spec.get("name", key)),
            queues=tuple(spec.get("queues", ())),
            level=str(spec.get("level", "L1")),
            away=bool(spec.get("away", False)),
        )
    return agents


def _queues(doc: YamlDocument, raw: dict[str, Any], problems: list[Problem]) -> dict[str, Queue]:
    queues = {}
    for name, spec in raw.items():
        spec = spec or {}
        queues[name] = Queue(
            name=str(name),
            agents=tuple(spec.get("agents", ())),
            escalation=spec.get("escalation"),
            language=spec.get("language"),
        )
    return queues
