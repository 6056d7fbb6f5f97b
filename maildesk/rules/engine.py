"""The compiled rule set: evaluate() decides a Routing; explain() also says why.

Order: the default route sets the starting values (the mailbox's queue, when it has
one, replaces the default queue); then every rule, in file order, whose conditions
hold applies its actions; `stop: true` on a matching rule ends the walk. Finally the
assignee strategy, SLA policy and language are resolved for the final queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from maildesk.common.business_hours import Calendar
from maildesk.common.domain import Priority, TicketState
from maildesk.common.json_time import json_time
from maildesk.intake.message import ParsedMessage
from maildesk.rules.actions import FOLLOW_UP_FIELDS, Action, Assign, Draft
from maildesk.rules.assign import AssignmentFactsNeeded, pick
from maildesk.rules.conditions import Condition, Trace
from maildesk.rules.definitions import Agent, Queue, Routing, RuleFacts, SlaPolicy
from maildesk.rules.index import RuleIndex
from maildesk.rules.message_view import MessageView

DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class CompiledRule:
    """One rule of rules.yaml, ready to test."""

    name: str
    line: int | None
    condition: Condition
    actions: tuple[Action, ...]
    stop: bool = False
    follow_ups: bool = False
    enabled: bool = True
    description: str = ""


@dataclass
class RuleOutcome:
    """What happened to one rule for one message (for `rules test`)."""

    name: str
    line: int | None
    status: str  # matched, not matched, skipped
    reason: str = ""
    trace: Trace | None = None
    actions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "line": self.line,
            "status": self.status,
            "reason": self.reason,
            "conditions": self.trace.to_dict() if self.trace else None,
            "actions": self.actions,
        }


@dataclass
class Explanation:
    """The decision for one message, each field with the rule that set it."""

    follow_up: bool
    routing: Routing
    set_by: dict[str, str]
    rules: list[RuleOutcome]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        r = self.routing
        return {
            "follow_up": self.follow_up,
            "rules": [o.to_dict() for o in self.rules],
            "fired": list(r.hits),
            "decision": {
                "queue": r.queue,
                "priority": r.priority.value if r.priority else None,
                "assignee": r.assignee,
                "assign_strategy": r.assign_strategy,
                "sla_policy": r.sla_policy,
                "first_response_due": json_time(r.first_response_due),
                "resolution_due": json_time(r.resolution_due),
                "auto_reply": r.auto_reply,
                "language": r.language,
                "tags": r.tags,
                "watchers": r.watchers,
                "cc": r.cc,
                "notify": r.notify,
                "spam": r.spam,
                "ignore": r.ignore,
            },
            "set_by": self.set_by,
            "notes": self.notes,
        }


@dataclass
class RuleSet:
    """Compiled rules; evaluate() is pure and cheap (nothing is compiled per message)."""

    source: str
    default_queue: str = "general"
    default_priority: Priority = Priority.NORMAL
    default_auto_reply: str | None = "ack"
    default_language: str = "en"
    default_calendar: str | None = None
    default_actions: tuple[Action, ...] = ()
    queues: dict[str, Queue] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)  # by key
    calendars: dict[str, Calendar] = field(default_factory=dict)
    sla_policies: dict[str, SlaPolicy] = field(default_factory=dict)
    sla_by_priority: dict[Priority, str] = field(default_factory=dict)
    rules: tuple[CompiledRule, ...] = ()
    # evaluate() tests only the rules the index says a message may match (see index.py);
    # False tests every rule in turn, the reference the index is tested against.
    indexed: bool = True

    def __post_init__(self) -> None:
        self._by_address = {a.address: a for a in self.agents.values()}
        self._agent_addresses = frozenset(self._by_address)
        # The rules evaluate() walks, chosen once: enabled ones, and those opted in to follow-ups.
        self._for_new = tuple(r for r in self.rules if r.enabled)
        self._for_follow_up = tuple(r for r in self._for_new if r.follow_ups)
        self._new_index = RuleIndex([r.condition for r in self._for_new])
        self._follow_up_index = RuleIndex([r.condition for r in self._for_follow_up])

    # --- lookups used elsewhere ------------------------------------------------------

    def agent_by_address(self, address: str) -> Agent | None:
        return self._by_address.get(address.lower())

    def find_agent(self, name_or_address: str) -> Agent | None:
        """An agent by key, address or display name (case-insensitive)."""
        wanted = name_or_address.strip().lower()
        for agent in self.agents.values():
            if wanted in (agent.key.lower(), agent.address, agent.name.lower()):
                return agent
        return None

    def queue_language(self, queue: str) -> str:
        q = self.queues.get(queue)
        return (q.language if q and q.language else None) or self.default_language

    def _language(self, queue: str, facts: RuleFacts) -> str:
        """The queue's language, else the one detected in the message, else the default."""
        q = self.queues.get(queue)
        return (q.language if q and q.language else None) or facts.language or self.default_language

    def queue_agents(self, queue: str) -> list[Agent]:
        """The agents of `queue`, in turn order."""
        q = self.queues.get(queue)
        return [self.agents[k] for k in q.agents if k in self.agents] if q else []

    def sla_policy_for(self, priority: Priority) -> SlaPolicy | None:
        """The SLA policy a ticket of `priority` gets when no rule names one."""
        name = self.sla_by_priority.get(priority)
        return self.sla_policies.get(name) if name else None

    # --- evaluating ------------------------------------------------------------------

    def evaluate(
        self, msg: ParsedMessage, *, ticket: TicketState | None, facts: RuleFacts
    ) -> Routing:
        """Routing for a new ticket (ticket is None) or a follow-up (only opted-in rules)."""
        return self._run(msg, ticket, facts, explain=False).routing

    def explain(
        self, msg: ParsedMessage, *, ticket: TicketState | None, facts: RuleFacts
    ) -> Explanation:
        """evaluate(), plus which rules matched or not and why, condition by condition."""
        return self._run(msg, ticket, facts, explain=True)

    def _run(
        self, msg: ParsedMessage, ticket: TicketState | None, facts: RuleFacts, *, explain: bool
    ) -> Explanation:
        view = MessageView(msg, facts, self._agent_addresses)
        follow_up = ticket is not None
        draft = Draft()
        notes: list[str] = []
        if follow_up:
            view.current_queue = ticket.queue if ticket else None
        else:
            self._start(draft, facts, notes)
            view.current_queue = draft.get("queue")
        outcomes: list[RuleOutcome] = []
        hits: list[str] = []
        stopped_by: str | None = None
        for rule in self._walk(view, follow_up, explain):
            if explain:
                skip = self._skip_reason(rule, follow_up, stopped_by)
                if skip:
                    outcomes.append(RuleOutcome(rule.name, rule.line, "skipped", skip))
                    continue
            trace = rule.condition.explain(view) if explain else None
            matched = trace.result if trace is not None else rule.condition.test(view)
            if not matched:
                if explain:
                    outcomes.append(RuleOutcome(rule.name, rule.line, "not matched", "", trace))
                continue
            hits.append(rule.name)
            applied = self._apply(rule, draft, follow_up)
            view.current_queue = draft.get("queue", view.current_queue)
            if explain:
                reason = "stop: later rules are not evaluated" if rule.stop else ""
                outcomes.append(
                    RuleOutcome(rule.name, rule.line, "matched", reason, trace, applied)
                )
            if rule.stop:
                if not explain:
                    break
                stopped_by = rule.name
        routing = self._follow_up_routing(draft) if follow_up else self._finish(draft, facts, notes)
        routing.hits = hits
        return Explanation(follow_up, routing, dict(draft.set_by), outcomes, notes)

    def _walk(self, view: MessageView, follow_up: bool, explain: bool) -> Sequence[CompiledRule]:
        """The rules to test in order: all for explain(), else the ones that may match."""
        if explain:
            return self.rules
        rules = self._for_follow_up if follow_up else self._for_new
        index = self._follow_up_index if follow_up else self._new_index
        if not (self.indexed and index.narrows):
            return rules
        return [rules[position] for position in index.candidates(view)]

    @staticmethod
    def _skip_reason(rule: CompiledRule, follow_up: bool, stopped_by: str | None) -> str:
        if stopped_by is not None:
            return f"rule '{stopped_by}' matched with stop: true"
        if not rule.enabled:
            return "enabled: false"
        if follow_up and not rule.follow_ups:
            return "follow-up (the rule has no follow_ups: true)"
        return ""

    @staticmethod
    def _apply(rule: CompiledRule, draft: Draft, follow_up: bool) -> list[str]:
        applied = []
        for action in rule.actions:
            if follow_up and action.field not in FOLLOW_UP_FIELDS:
                applied.append(f"{action} (not applied to a follow-up)")
                continue
            draft.apply(action, f"rule {rule.name}")
            applied.append(str(action))
        return applied

    def _start(self, draft: Draft, facts: RuleFacts, notes: list[str]) -> None:
        """The default route: the starting values every new ticket gets."""
        draft.apply(Action("priority", self.default_priority), DEFAULT_SOURCE)
        draft.apply(Action("auto_reply", self.default_auto_reply), DEFAULT_SOURCE)
        draft.apply(Action("queue", self.default_queue), DEFAULT_SOURCE)
        for action in self.default_actions:
            draft.apply(action, DEFAULT_SOURCE)
        if facts.mailbox_queue:
            if facts.mailbox_queue in self.queues:
                source = f"mailbox {facts.mailbox or ''}".strip()
                draft.apply(Action("queue", facts.mailbox_queue), source)
            else:
                notes.append(
                    f"mailbox queue '{facts.mailbox_queue}' is not in rules.yaml; "
                    f"using {self.default_queue}"
                )

    def _finish(self, draft: Draft, facts: RuleFacts, notes: list[str]) -> Routing:
        queue = draft.get("queue", self.default_queue)
        priority = draft.get("priority", self.default_priority)
        spam, ignore = bool(draft.get("spam")), bool(draft.get("ignore"))
        routing = Routing(
            queue=queue,
            priority=priority,
            auto_reply=draft.get("auto_reply"),
            language=draft.get("language") or self._language(queue, facts),
            tags=[*draft.lists["tags"], *(["ignored"] if ignore else [])],
            watchers=list(draft.lists["watchers"]),
            cc=list(draft.lists["cc"]),
            notify=list(draft.lists["notify"]),
            spam=spam,
            ignore=ignore,
        )
        if "language" not in draft.set_by:
            q = self.queues.get(queue)
            by_queue = f"queue {queue}" if q and q.language else None
            detected = "detected in the message" if facts.language else DEFAULT_SOURCE
            draft.set_by["language"] = by_queue or detected
        self._assign(routing, draft.get("assignee"), queue, facts, notes)
        if spam or ignore:
            notes.append("no SLA: the message is marked spam or ignored")
        else:
            self._sla(routing, draft, priority, facts, notes)
        return routing

    def _assign(
        self,
        routing: Routing,
        assign: Assign | None,
        queue: str,
        facts: RuleFacts,
        notes: list[str],
    ) -> None:
        if assign is None or assign.kind == "none":
            return
        if assign.kind == "agent":
            routing.assignee = assign.value
            agent = self.agent_by_address(assign.value or "")
            if agent is not None and agent.away:
                notes.append(f"{agent.key} is marked away but was named by a rule")
            return
        strategy = assign.value or "round_robin"
        agents = self.queue_agents(queue)
        routing.assign_choice = sum(not a.away for a in agents) > 1
        if routing.assign_choice and not facts.assignment_facts:
            raise AssignmentFactsNeeded(queue)
        chosen = pick(strategy, agents, facts.open_counts, facts.last_assigned.get(queue))
        routing.assign_strategy = strategy
        names = ", ".join(a.key + (" (away)" if a.away else "") for a in agents) or "nobody"
        if chosen is None:
            notes.append(f"{strategy} in queue {queue}: no available agent among {names}")
            return
        routing.assignee = chosen.address
        counts = ", ".join(f"{a.key} {facts.open_counts.get(a.address, 0)}" for a in agents)
        last = facts.last_assigned.get(queue) or "nobody yet"
        notes.append(
            f"{strategy} in queue {queue} among {names}: chose {chosen.key} "
            f"(last assigned: {last}; open tickets: {counts})"
        )

    def _sla(
        self,
        routing: Routing,
        draft: Draft,
        priority: Priority,
        facts: RuleFacts,
        notes: list[str],
    ) -> None:
        if "sla" in draft.values:
            name = draft.get("sla")
            policy = self.sla_policies.get(name) if name else None
        else:
            policy = self.sla_policy_for(priority)
            if policy is not None:
                draft.set_by["sla"] = f"sla.by_priority ({priority.value})"
        if policy is None:
            return
        routing.sla_policy = policy.name
        routing.first_response_due, routing.resolution_due = policy.due(facts.now)
        notes.append(f"SLA {policy.name} counted on calendar {policy.calendar_name}")

    @staticmethod
    def _follow_up_routing(draft: Draft) -> Routing:
        return Routing(
            queue=draft.get("queue"),
            priority=draft.get("priority"),
            tags=list(draft.lists["tags"]),
            notify=list(draft.lists["notify"]),
        )
