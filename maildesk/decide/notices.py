"""Who reads each notification, its Message-ID, and where it sits in the reader's thread.

Each reader has their own view of a conversation: the requester (and CCs) see the
messages they wrote and the notifications we sent them; an agent sees the
notifications we sent to them and their own replies. A notification answers the
message its reader just sent, or else the last one they saw, and refers to the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from maildesk.common.config import Config
from maildesk.common.domain import Status, TicketState
from maildesk.common.message_ids import new_message_id
from maildesk.decide.audience import assignee_or_queue, escalation_target
from maildesk.decide.decision import Change, Notice
from maildesk.decide.template_context import notification_context
from maildesk.intake.message import Address, ParsedMessage
from maildesk.rules import RuleSet
from maildesk.triage.reply_tokens import ReplyKeys, forwarding_address, signed_reply_address
from maildesk.triage.return_path import return_path
from maildesk.triage.robots import is_robot_address


@dataclass(frozen=True)
class ThreadContext:
    """The Message-IDs a notification answers and refers to."""

    in_reply_to: str | None
    references: list[str]


@dataclass(frozen=True)
class QueuedNotice:
    """One outbox row to write: a notice for one group of recipients, with its Message-ID."""

    notice: Notice
    to: list[Address]
    message_id: str
    thread: ThreadContext
    context: dict[str, Any] = field(default_factory=dict)  # the template's variables
    reply_to: str | None = None  # an agent's signed reply address (None: the support address)
    return_path: str | None = None  # the signed envelope sender bounces come back to (VERP)


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


def address_notices(
    notices: list[Notice],
    ticket: TicketState,
    config: Config,
    *,
    msg: ParsedMessage | None = None,
    requester_saw_msg: bool = False,
    requester_extra: dict[str, Any] | None = None,
    reply_keys: ReplyKeys | None = None,
) -> list[QueuedNotice]:
    """Each notice per reader, with its Message-ID, thread headers and template variables.

    `requester_extra` adds variables to the requester's notifications (suggested
    knowledge-base articles). With `reply_keys`, each agent's copy gets a Reply-To signed
    for that agent and ticket, which is how their reply is later known to be theirs, and
    every notice a return path signed for the ticket, which is how a bounce is tied to it.
    """
    notices = [n for n in map(_without_robots, notices) if n is not None]
    queued = plan_notices(
        notices, ticket, config.tickets.id_domain, msg=msg, requester_saw_msg=requester_saw_msg
    )
    addressed = []
    support = config.tickets.support_address
    bounces_to = return_path(support, ticket.ref, reply_keys.current) if reply_keys else None
    for item in queued:
        context = notification_context(ticket, item.notice, msg, config)
        if requester_extra and item.notice.audience == "requester":
            context.update(requester_extra)
        reply_to = None
        if reply_keys is not None and item.notice.audience == "agents" and item.to:
            reader = item.to[0].address
            reply_to = signed_reply_address(support, ticket.ref, reader, reply_keys.current)
            # Where this reader forwards a customer's mail to open the ticket for them.
            context["forward_to"] = forwarding_address(support, reader, reply_keys.current)
        # Built anew, not with dataclasses.replace: that is a fifth of this function's time.
        addressed.append(
            QueuedNotice(
                item.notice, item.to, item.message_id, item.thread, context, reply_to, bounces_to
            )
        )
    return addressed


def _without_robots(notice: Notice) -> Notice | None:
    """No automatic notice ever goes to a robot (MAILER-DAEMON, postmaster, no-reply):
    nobody reads it there, and an answering robot starts a loop."""
    if notice.audience != "requester" or not notice.automatic:
        return notice
    to = [a for a in notice.to if not is_robot_address(a.address)]
    if not to:
        return None
    cc = [a for a in notice.cc if not is_robot_address(a.address)]
    return notice if (to, cc) == (notice.to, notice.cc) else replace(notice, to=to, cc=cc)


def per_reader(notice: Notice) -> list[Notice]:
    """Each agent has their own view of the thread, so each gets their own copy."""
    if notice.audience != "agents" or len(notice.to) <= 1:
        return [notice] if notice.to else []
    return [dataclasses.replace(notice, to=[a]) for a in notice.to]


def status_notices(ticket: TicketState, changes: list[Change]) -> list[Notice]:
    """Tell the requester (and CCs) when `changes` resolve or close `ticket`."""
    notices = []
    for change in changes:
        if change.field != "status" or change.value == ticket.status:
            continue
        if change.value in (Status.RESOLVED, Status.CLOSED):
            requester = Address(ticket.requester_name, ticket.requester)
            ccs = [Address("", a) for a, role in ticket.participants.items() if role == "cc"]
            notices.append(Notice(f"status_{change.value}", [requester], "requester", cc=ccs))
    return notices


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
    target = escalation_target(ticket.queue, rules)
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
