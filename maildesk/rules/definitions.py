"""What rules.yaml describes (agents, queues, SLA policies) and what evaluating it decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from maildesk.common.business_hours import Calendar
from maildesk.common.domain import Priority

# Assignment strategies a rule may name instead of an agent.
STRATEGIES = ("round_robin", "least_open")
ALWAYS_OPEN = "24x7"  # a built-in calendar every file can name
NONE = "none"  # `assignee: none`, `sla: none`, `auto_reply: none`


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
    agents: tuple[str, ...] = ()  # agent keys, in the order strategies walk them
    escalation: str | None = None  # an agent key or a queue name
    language: str | None = None
    # Who may join a ticket in this queue: "proof" (they quote our Message-ID or were on
    # the message they answer), "same_domain" (also anyone of the requester's domain), or
    # "list" (a public mailing list's queue: also anyone answering a message of the ticket).
    participants: str = "proof"


@dataclass(frozen=True)
class SlaPolicy:
    """Targets in business time, counted on `calendar` from the ticket's creation."""

    name: str
    first_response: timedelta | None
    resolution: timedelta | None
    calendar_name: str
    calendar: Calendar

    def due(self, start: datetime) -> tuple[datetime | None, datetime | None]:
        """(first response due, resolution due) for a ticket opened at `start`."""
        first = self.calendar.add(start, self.first_response) if self.first_response else None
        done = self.calendar.add(start, self.resolution) if self.resolution else None
        return first, done


@dataclass
class Routing:
    """What the rules decided for one message. None means 'leave as it is'."""

    queue: str | None = None
    priority: Priority | None = None
    assignee: str | None = None  # an agent address
    assign_strategy: str | None = None  # round_robin or least_open
    # The strategy chose among several available agents (so its turn is worth recording).
    assign_choice: bool = False
    tags: list[str] = field(default_factory=list)
    sla_policy: str | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    auto_reply: str | None = None  # template name; None sends none
    watchers: list[str] = field(default_factory=list)  # addresses told about every change
    cc: list[str] = field(default_factory=list)  # customer addresses copied on replies
    notify: list[str] = field(default_factory=list)  # addresses sent a new-ticket notice
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
    # False: the two above are not loaded yet. A strategy that has a choice between
    # agents then raises AssignmentFactsNeeded; one with a single candidate needs neither.
    assignment_facts: bool = True
    mailbox: str | None = None  # the source the message came from (mailbox name, "cli")
    mailbox_queue: str | None = None  # that mailbox's configured queue
    # The customer's language: detected for a new ticket (None: unclear), the ticket's own
    # for a follow-up. Rules test it as `language`; a new ticket gets it unless a rule or
    # the queue names one.
    language: str | None = None
