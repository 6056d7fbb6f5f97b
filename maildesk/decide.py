"""The deciding step: a parsed message plus the ticket it threads into -> a Decision.

Pure: no database, no network, no clock other than `ctx.now`. The store applies the
Decision in one transaction, so everything here can be tested with plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maildesk.config import TicketsConfig
from maildesk.domain import Author, MessageKind, Priority, Status, TicketState
from maildesk.parse import Address, ParsedMessage
from maildesk.rules import Routing, RuleFacts, RuleSet
from maildesk.screen import MailClass, Screening
from maildesk.threading import strip_token


@dataclass
class Notice:
    """A notification to render from `template` and queue in the outbox."""

    template: str
    to: list[Address]
    audience: str  # "requester" or "agents"
    automatic: bool = True
    cc: list[Address] = field(default_factory=list)
    from_agent: Address | None = None  # relayed replies show the agent's name
    body_text: str | None = None  # text relayed from an agent or customer
    extra: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None  # set by the store for the ticket's first reply


@dataclass
class NewTicket:
    """The fields of a ticket this message opens."""

    subject: str
    requester: Address
    queue: str
    priority: Priority
    assignee: str | None
    language: str
    tags: list[str] = field(default_factory=list)
    sla_policy: str | None = None
    spam: bool = False
    linked_from: int | None = None  # the closed ticket a reply reopened as a new one
    assign_strategy: str | None = None
    assign_candidates: list[str] = field(default_factory=list)


@dataclass
class Change:
    """One field set on the ticket, with the reason that goes in the event log."""

    field: str
    value: Any
    reason: str


@dataclass
class Decision:
    """Everything the store must do for one message, in one transaction."""

    author: Author
    kind: MessageKind
    actor: str
    screening: Screening
    ticket_id: int | None = None
    new_ticket: NewTicket | None = None
    internal: bool = False
    changes: list[Change] = field(default_factory=list)
    participants: list[tuple[Address, str]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (event kind, text)
    rule_hits: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DecideContext:
    """Configuration and facts the deciding step reads."""

    tickets: TicketsConfig
    rules: RuleSet
    now: datetime
    screening: Screening
    facts: RuleFacts
    auto_replies_last_hour: int = 0
    auto_reply_limit: int = 5
    own_addresses: frozenset[str] = frozenset()
    # The receiving mailbox's queue: it replaces the default route's queue.
    default_queue: str | None = None


def decide(msg: ParsedMessage, ticket: TicketState | None, ctx: DecideContext) -> Decision:
    """Decide what `msg` does: open a ticket, or add to `ticket` and change it."""
    if ticket is not None:
        author = classify_author(msg, ticket, ctx)
        if author is Author.STRANGER:
            ticket = None
        elif (
            ticket.status is Status.CLOSED
            and ctx.tickets.reply_to_closed == "new"
            and author is not Author.AGENT
        ):
            return _new_ticket(msg, ctx, linked_from=ticket)
    if ticket is None:
        return _new_ticket(msg, ctx)
    return _follow_up(msg, ticket, ctx)


def classify_author(msg: ParsedMessage, ticket: TicketState, ctx: DecideContext) -> Author:
    """Who wrote `msg`, relative to `ticket`."""
    sender = msg.from_addr
    if ctx.rules.agent_by_address(sender) is not None:
        return Author.AGENT
    if sender == ticket.requester:
        return Author.REQUESTER
    if sender in ticket.participants:
        return Author.PARTICIPANT
    if ctx.screening.kind in (MailClass.BOUNCE, MailClass.AUTO_REPLY):
        # Daemons and out-of-office robots answer from addresses we never saw.
        return Author.SYSTEM
    return Author.STRANGER


def _new_ticket(
    msg: ParsedMessage, ctx: DecideContext, linked_from: TicketState | None = None
) -> Decision:
    routing = ctx.rules.evaluate(msg, ticket=None, facts=ctx.facts)
    requester = msg.sender or Address("", "unknown@invalid")
    queue = _queue_for(routing, ctx)
    new = NewTicket(
        subject=strip_token(msg.subject, ctx.tickets.prefix) or "(no subject)",
        requester=requester,
        queue=queue,
        priority=routing.priority or ctx.rules.default_priority,
        assignee=routing.assignee,
        language=routing.language or ctx.rules.queue_language(queue),
        tags=list(routing.tags),
        sla_policy=routing.sla_policy,
        spam=routing.spam,
        linked_from=linked_from.id if linked_from else None,
        assign_strategy=routing.assign_strategy,
    )
    kind = _automatic_kind(ctx.screening) or MessageKind.REQUEST
    decision = Decision(
        author=Author.REQUESTER,
        kind=kind,
        actor=requester.address,
        screening=ctx.screening,
        new_ticket=new,
        rule_hits=list(routing.hits),
    )
    decision.participants = [(a, "cc") for a in msg.cc + msg.to if _is_customer(a.address, ctx)] + [
        (Address("", w), "watcher") for w in routing.watchers
    ]
    if linked_from:
        decision.notes.append(("linked", f"reply to closed ticket {linked_from.ref}"))
    quiet = routing.spam or routing.ignore
    if routing.auto_reply and not quiet and _may_auto_reply(ctx):
        decision.notices.append(Notice(routing.auto_reply, [requester], "requester"))
    if not quiet:
        agents = _agents_to_tell(new.assignee, queue, ctx)
        if agents:
            decision.notices.append(Notice("new_ticket", agents, "agents", body_text=msg.text))
        for address in routing.notify:
            decision.notices.append(Notice("new_ticket", [Address("", address)], "agents"))
    return decision


def _queue_for(routing: Routing, ctx: DecideContext) -> str:
    """A rule that fired decides the queue; otherwise the mailbox's, then the default route's."""
    if ctx.default_queue and not routing.hits:
        return ctx.default_queue
    return routing.queue or ctx.rules.default_queue


def _follow_up(msg: ParsedMessage, ticket: TicketState, ctx: DecideContext) -> Decision:
    author = classify_author(msg, ticket, ctx)
    decision = Decision(
        author=author,
        kind=MessageKind.REPLY,
        actor=msg.from_addr,
        screening=ctx.screening,
        ticket_id=ticket.id,
    )
    automatic = _automatic_kind(ctx.screening)
    if automatic:
        decision.kind, decision.internal = automatic, True
        decision.notes.append((automatic.value, ctx.screening.reason))
        return decision
    if author is Author.AGENT:
        return _agent_reply(msg, ticket, ctx, decision)
    routing = ctx.rules.evaluate(msg, ticket=ticket, facts=ctx.facts)
    decision.rule_hits = list(routing.hits)
    _apply_follow_up_routing(routing, ticket, decision)
    if ticket.status in (Status.PENDING, Status.RESOLVED, Status.CLOSED):
        decision.changes.append(
            Change("status", Status.OPEN, f"customer replied to a {ticket.status} ticket")
        )
    decision.participants = [
        (a, "cc")
        for a in msg.cc + msg.to
        if _is_customer(a.address, ctx) and not ticket.is_participant(a.address)
    ]
    agents = _agents_to_tell(ticket.assignee, ticket.queue, ctx)
    if agents:
        decision.notices.append(Notice("customer_reply", agents, "agents", body_text=msg.text))
    return decision


def _agent_reply(
    msg: ParsedMessage, ticket: TicketState, ctx: DecideContext, decision: Decision
) -> Decision:
    agent = ctx.rules.agent_by_address(msg.from_addr)
    assert agent is not None
    decision.kind = MessageKind.AGENT_REPLY
    if ticket.first_response_at is None:
        decision.changes.append(Change("first_response_at", ctx.now, "first agent reply"))
    if ticket.status is Status.NEW:
        decision.changes.append(Change("status", Status.OPEN, "agent replied"))
    requester = Address(ticket.requester_name, ticket.requester)
    ccs = [Address("", a) for a, role in ticket.participants.items() if role == "cc"]
    decision.notices.append(
        Notice(
            "agent_reply",
            [requester],
            "requester",
            automatic=False,
            cc=ccs,
            from_agent=Address(agent.name, agent.address),
            body_text=msg.text,
        )
    )
    return decision


def _apply_follow_up_routing(routing: Any, ticket: TicketState, decision: Decision) -> None:
    reason = "rule " + ", ".join(routing.hits) if routing.hits else "rule"
    if routing.priority and routing.priority.rank > ticket.priority.rank:
        decision.changes.append(Change("priority", routing.priority, reason))
    if routing.queue and routing.queue != ticket.queue:
        decision.changes.append(Change("queue", routing.queue, reason))
    for tag in routing.tags:
        if tag not in ticket.tags:
            decision.changes.append(Change("tag", tag, reason))


def _automatic_kind(screening: Screening) -> MessageKind | None:
    if screening.kind is MailClass.BOUNCE:
        return MessageKind.BOUNCE
    if screening.kind in (MailClass.AUTO_REPLY, MailClass.OWN):
        return MessageKind.AUTO_REPLY
    return None


def _may_auto_reply(ctx: DecideContext) -> bool:
    return ctx.screening.may_auto_reply and ctx.auto_replies_last_hour < ctx.auto_reply_limit


def _is_customer(address: str, ctx: DecideContext) -> bool:
    return address not in ctx.own_addresses and ctx.rules.agent_by_address(address) is None


def _agents_to_tell(assignee: str | None, queue: str, ctx: DecideContext) -> list[Address]:
    if assignee:
        agent = ctx.rules.agent_by_address(assignee)
        return [Address(agent.name if agent else "", assignee)]
    q = ctx.rules.queues.get(queue)
    if not q:
        return []
    agents = [ctx.rules.agents[k] for k in q.agents if k in ctx.rules.agents]
    return [Address(a.name, a.address) for a in agents if not a.away]
