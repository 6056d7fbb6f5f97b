"""What rules.yaml describes (agents, queues) and what evaluating it decides (Routing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from maildesk.domain import Priority


@dataclass(frozen=True)
class Agent:
    """A person who answers tickets, known by address."""

    key: str
    address: str
    name: str
    queues: tuple[str, ...] = ()
    level: str = "L1"
    away: bool = False


@dataclass(frozen=True)
class Queue:
    """A named queue with its agents and where its SLA breaches escalate to."""

    name: str
    agents: tuple[str, ...] = ()  # agent keys
    escalation: str | None = None  # an agent key or a queue name
    language: str | None = None


@dataclass
class Routing:
    """What the rules decided for one message. None means 'leave as it is'."""

    queue: str | None = None
    priority: Priority | None = None
    assignee: str | None = None  # an agent address
    assign_strategy: str | None = None  # round_robin or least_open
    tags: list[str] = field(default_factory=list)
    sla_policy: str | None = None
    auto_reply: str | None = None  # template name; None sends none
    watchers: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)
    spam: bool = False
    ignore: bool = False
    language: str | None = None
    hits: list[str] = field(default_factory=list)  # names of the rules that fired


@dataclass(frozen=True)
class RuleFacts:
    """Facts from outside the message that rules may depend on."""

    now: datetime
    open_counts: dict[str, int] = field(default_factory=dict)  # agent address -> open tickets
    last_assigned: dict[str, str] = field(default_factory=dict)  # queue -> agent address
