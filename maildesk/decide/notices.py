"""Notifications of a ticket: what each template is for, what it sees, how it threads.

Each reader has their own view of a conversation: the requester (and CCs) see the
messages they wrote and the notifications we sent them; an agent sees the
notifications we sent to them and their own replies. A notification answers the
message its reader just sent, or else the last one they saw, and refers to the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import Status, TicketState
from maildesk.decide.inbound import Change, Notice, status_notices
from maildesk.decide.satisfaction import rating_context
from maildesk.intake.parse import Address, ParsedMessage
from maildesk.outgoing.compose import new_message_id
from maildesk.rules import RuleSet
from maildesk.store.models import OutboxEntry, ThreadRef, Ticket
from maildesk.store.outbox import QueuedNotice, ThreadContext, outbox_row, ticket_thread_root


@dataclass(frozen=True)
class TemplateSpec:
    """One notification event: who reads it and the extra variables its template gets."""

    audience: str  # requester or agents
    purpose: str
    sample: dict[str, Any] = field(default_factory=dict)
    has_agent: bool = False  # `agent` is set (else None)


def _sample_sla(stage: str) -> dict[str, Any]:
    return {
        "sla": {
            "stage": stage,
            "kind": "first_response",
            "policy": "standard",
            "due_at": datetime(2026, 11, 23, 14, 0, tzinfo=UTC),
            "escalated_to": "Carol Chen",
        }
    }


TEMPLATES: dict[str, TemplateSpec] = {
    "ack": TemplateSpec("requester", "a new request was received: its reference, how to reply"),
    "agent_reply": TemplateSpec("requester", "an agent's reply, relayed", has_agent=True),
    "status_resolved": TemplateSpec("requester", "the ticket was resolved: how to reopen it"),
    "status_closed": TemplateSpec("requester", "the ticket was closed"),
    "new_ticket": TemplateSpec("agents", "a new ticket for the assignee or the queue"),
    "customer_reply": TemplateSpec("agents", "the requester or a CC wrote again"),
    "sla_warning": TemplateSpec("agents", "an SLA due time is near", _sample_sla("warning")),
    "sla_breach": TemplateSpec("agents", "an SLA due time passed", _sample_sla("breach")),
    "command_error": TemplateSpec(
        "agents",
        "an agent's commands failed; nothing was applied",
        {
            "errors": ["#assign zed: no agent called zed", "#status done: not a status"],
            "commands": ["#assign zed", "#status done"],
        },
        has_agent=True,
    ),
    "note": TemplateSpec("agents", "an internal note, to the other agents", has_agent=True),
    "reminder": TemplateSpec(
        "agents", "an open ticket had no agent action for a while", {"hours": 24}
    ),
    "command_confirm": TemplateSpec(
        "agents",
        "an agent's commands were applied: what changed",
        {"applied": ["status open -> pending", "assigned to Alice Archer"]},
        has_agent=True,
    ),
    "oversized": TemplateSpec(
        "requester",
        "a message or attachment was over a size limit: what was not kept",
        {
            "oversized": {
                "message": "the message is 61.2 MB, over the 40.0 MB limit",
                "attachments": [
                    {"name": "video.mp4", "size": "30.5 MB", "reason": "over the 25.0 MB limit"}
                ],
            }
        },
    ),
}


def notification_context(
    ticket: TicketState, notice: Notice, msg: ParsedMessage | None, config: Config
) -> dict[str, Any]:
    """The variables every notification template can use (README lists them).

    Stored as JSON with the outbox row, so values are plain strings, numbers and lists.
    """
    tickets = config.tickets
    agent = notice.from_agent
    return {
        "ticket": {
            "ref": ticket.ref,
            "subject": ticket.subject,
            "status": ticket.status.value,
            "priority": ticket.priority.value,
            "queue": ticket.queue,
            "assignee": ticket.assignee or "",
            "requester": ticket.requester,
            "requester_name": ticket.requester_name or ticket.requester,
            "created_at": ticket.created_at.isoformat(),
            "language": ticket.language,
        },
        "support": {"address": tickets.support_address, "name": tickets.support_name},
        "settings": _settings(config),
        "agent": {"name": agent.name or agent.address, "address": agent.address} if agent else None,
        "body": notice.body_text or "",
        "message": {
            "from": str(msg.sender) if msg and msg.sender else "",
            "subject": msg.subject if msg else "",
        },
        **_rating(ticket, notice, config),
        **_jsonable(notice.extra),
    }


def _rating(ticket: TicketState, notice: Notice, config: Config) -> dict[str, Any]:
    """The rating invitation of the "resolved" notification (links expire)."""
    if notice.template != "status_resolved":
        return {}
    satisfaction = config.satisfaction
    secret = satisfaction.secret.read("satisfaction secret") if satisfaction.secret else None
    context = rating_context(
        ticket.ref,
        ticket.subject,
        support_address=config.tickets.support_address,
        secret=secret,
        now=ticket.updated_at,
        days=satisfaction.link_days,
        link_base=satisfaction.link_base,
    )
    return _jsonable(context)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def sample_context(config: Config, template: str) -> dict[str, Any]:
    """Variables for a made-up ticket, as `maildesk check` renders `template` with them."""
    spec = TEMPLATES.get(template, TemplateSpec("requester", "custom"))
    return {
        "ticket": {
            "ref": f"{config.tickets.prefix}-1",
            "subject": "Sample request",
            "status": "open",
            "priority": "normal",
            "queue": "general",
            "assignee": "agent@example.com",
            "requester": "customer@example.org",
            "requester_name": "Sample Customer",
            "created_at": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
            "language": config.tickets.language,
        },
        "support": {"address": config.tickets.support_address, "name": config.tickets.support_name},
        "settings": _settings(config),
        "agent": {"name": "Sample Agent", "address": "agent@example.com"}
        if spec.has_agent
        else None,
        "body": "Sample text.\nA second line with <b>markup</b> that must stay text.",
        "message": {"from": "Sample Customer <customer@example.org>", "subject": "Sample request"},
        **spec.sample,
    }


def _settings(config: Config) -> dict[str, Any]:
    tickets = config.tickets
    return {
        "prefix": tickets.prefix,
        "reply_to_closed": tickets.reply_to_closed,
        "auto_close_days": tickets.auto_close_days,
    }


def thread_for(view: list[str], answering: str | None) -> ThreadContext:
    """In-Reply-To the message being answered (else the last one seen); References all."""
    refs = [r for r in view if r != answering]
    if answering:
        refs.append(answering)
    return ThreadContext(in_reply_to=refs[-1] if refs else None, references=refs)


def plan_notices(
    notices: list[Notice],
    ticket: TicketState,
    id_domain: str,
    *,
    msg: ParsedMessage | None = None,
    requester_saw_msg: bool = False,
) -> list[QueuedNotice]:
    """Give each notice its readers, Message-ID and thread headers (pure).

    Each reader has their own view of the conversation: the requester (and CCs) see
    what they wrote and what we sent them; an agent sees what we sent them and what
    they wrote. A notification answers the message its reader just sent, else the
    last one they saw, and refers to the rest. The requester's first notification is
    the thread's root and carries the ticket's own Message-ID.
    """
    requester_view = list(ticket.thread_ids)
    agent_views = {a: list(ids) for a, ids in ticket.agent_threads.items()}
    root_sent = ticket.message_id in requester_view
    queued: list[QueuedNotice] = []
    for notice in notices:
        for single in per_reader(notice):
            answering = msg.message_id if msg else None
            if single.audience == "requester":
                view = requester_view
                if not requester_saw_msg:
                    answering = None
                message_id = (
                    ticket.message_id if not root_sent else new_message_id(ticket.ref, id_domain)
                )
                root_sent = True
            else:
                reader = single.to[0].address if single.to else ""
                view = agent_views.setdefault(reader, [])
                if msg is None or msg.from_addr != reader:
                    answering = None
                message_id = new_message_id(ticket.ref, id_domain)
            queued.append(QueuedNotice(single, single.to, message_id, thread_for(view, answering)))
            if answering and answering not in view:
                view.append(answering)
            view.append(message_id)  # a second notice to the same reader answers this one
    return queued


def per_reader(notice: Notice) -> list[Notice]:
    """Each agent has their own view of the thread, so each gets their own copy."""
    if notice.audience != "agents" or len(notice.to) <= 1:
        return [notice] if notice.to else []
    return [dataclasses.replace(notice, to=[a]) for a in notice.to]


class Notifier:
    """Queues notifications for changes made outside ingest (timers, the command line)."""

    def __init__(self, config: Config):
        self.config = config

    def queue(
        self,
        session: Session,
        ticket: Ticket,
        notices: list[Notice],
        now: datetime,
        *,
        msg: ParsedMessage | None = None,
    ) -> list[OutboxEntry]:
        """Add outbox rows for `notices` about the loaded `ticket` in the caller's transaction."""
        from maildesk.store.lookup import load_ticket_state

        state = load_ticket_state(session, ticket)
        queued = plan_notices(notices, state, self.config.tickets.id_domain, msg=msg)
        root = ticket_thread_root(state.thread_index, state.created_at, state.message_id)
        entries = []
        for item in queued:
            context = notification_context(state, item.notice, msg, self.config)
            row, ref = outbox_row(
                self.config,
                ticket_id=ticket.id,
                language=state.language,
                queued=item,
                context=context,
                now=now,
                thread_root=root,
                replying=msg is not None,
            )
            entry = OutboxEntry(**row)
            session.add(entry)
            session.add(ThreadRef(**ref))
            entries.append(entry)
        return entries

    def change_status(
        self,
        session: Session,
        ticket: Ticket,
        status: Status,
        *,
        actor: str,
        reason: str,
        now: datetime,
    ) -> list[OutboxEntry]:
        """Set `ticket`'s status outside the ingest pipeline (timers, CLI) and notify."""
        from maildesk.store.lookup import load_ticket_state
        from maildesk.store.tickets import apply_change

        before = load_ticket_state(session, ticket)
        change = Change("status", status, reason)
        apply_change(session, ticket, change, actor, now)
        session.flush()
        return self.queue(session, ticket, status_notices(before, [change]), now)


def sla_notices(
    ticket: TicketState,
    rules: RuleSet,
    *,
    stage: str,
    kind: str,
    due_at: datetime,
    policy: str | None = None,
) -> list[Notice]:
    """SLA `stage` ("warning" or "breach") notices to the assignee and the escalation target."""
    readers = assignee_or_queue(ticket, rules)
    target = _escalation_target(ticket.queue, rules)
    for agent in target:
        if agent.address not in {a.address for a in readers}:
            readers.append(agent)
    extra = {
        "sla": {
            "stage": stage,
            "kind": kind,
            "policy": policy or ticket.sla_policy or "",
            "due_at": due_at,
            "escalated_to": ", ".join(a.name or a.address for a in target),
        }
    }
    if not readers:
        return []
    return [Notice(f"sla_{stage}", readers, "agents", extra=extra)]


def assignee_or_queue(ticket: TicketState, rules: RuleSet) -> list[Address]:
    if ticket.assignee:
        agent = rules.agent_by_address(ticket.assignee)
        return [Address(agent.name if agent else "", ticket.assignee)]
    return _queue_agents(ticket.queue, rules)


def _queue_agents(queue: str, rules: RuleSet) -> list[Address]:
    q = rules.queues.get(queue)
    keys = q.agents if q else ()
    return [
        Address(rules.agents[k].name, rules.agents[k].address)
        for k in keys
        if k in rules.agents and not rules.agents[k].away
    ]


def _escalation_target(queue: str, rules: RuleSet) -> list[Address]:
    q = rules.queues.get(queue)
    target = q.escalation if q else None
    if not target:
        return []
    if target in rules.agents:
        agent = rules.agents[target]
        return [Address(agent.name, agent.address)]
    return _queue_agents(target, rules)
