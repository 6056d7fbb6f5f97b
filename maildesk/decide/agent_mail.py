"""What an agent's mail does: relay a reply, keep a note, or apply #commands (pure).

The commands at the top of a reply are checked all together; if any is wrong,
nothing from the message is applied or relayed and the agent gets an explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from maildesk.common.domain import MessageKind, Priority, Status, TicketState
from maildesk.decide.agent_find import find_notice, find_results
from maildesk.decide.assignment import WATCHER_COPY, tell_new_owner
from maildesk.decide.audience import ticket_agents, watchers
from maildesk.decide.commands import Command, parse_commands
from maildesk.decide.decision import Change, DecideContext, Decision, Notice
from maildesk.decide.kb import Article, expand_kb_commands
from maildesk.decide.lifecycle import transition_problem
from maildesk.decide.notice_files import Reply, agent_reply, attachment_notices
from maildesk.intake.message import Address, ParsedMessage
from maildesk.intake.quotes import WHOLE, extract_reply, reply_source
from maildesk.rules import Agent
from maildesk.triage.reply_tokens import quotes_signed_address


@dataclass
class _Outcome:
    changes: list[Change] = field(default_factory=list)
    participants: list[tuple[Address, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    merge_into: TicketState | None = None
    applied: list[str] = field(default_factory=list)  # human descriptions, for the agent
    new_owner: Agent | None = None  # #assign gave the ticket to this agent


def agent_mail(
    msg: ParsedMessage,
    ticket: TicketState,
    ctx: DecideContext,
    decision: Decision,
    *,
    find_ticket: Callable[[str], TicketState | None] = lambda ref: None,
    articles: list[Article] | None = None,
) -> Decision:
    """Fill `decision` for a message an agent sent about `ticket` (already verified as the
    agent's by `agent_identity.verify_agent`)."""
    agent = ctx.rules.agent_by_address(msg.from_addr)
    assert agent is not None
    me = Address(agent.name, agent.address)
    block = parse_commands(reply_source(msg.text, msg.html))
    decision.commands = [c.line for c in block.commands]
    to_comment = bool(ctx.tickets.comment_address) and any(
        a.address == ctx.tickets.comment_address.lower() for a in msg.recipients
    )
    outcome = _check(block.commands, ticket, ctx, agent, find_ticket)
    extracted = extract_reply(block.body)
    # Nothing but quoted history after the commands: the commands were the message.
    answer = "" if extracted.how == WHOLE and block.commands else extracted.text
    body, inserted, kb_problems = expand_kb_commands(answer, articles or [])
    outcome.errors += [f"#kb: {p}" for p in kb_problems]
    internal = block.internal or to_comment
    reply = agent_reply(msg, ticket, ctx, body, plain=bool(inserted))
    if not internal and body.strip():
        outcome.errors += reply.errors  # a blocked type or too much to mail
    files, file_errors = attachment_notices(block.named("send-attachments"), me, ticket, ctx)
    outcome.errors = block.errors + outcome.errors + file_errors
    if outcome.errors:
        return _refuse(decision, me, outcome.errors, block)
    decision.changes += outcome.changes
    decision.participants += outcome.participants
    decision.merge_into = outcome.merge_into
    if inserted:
        decision.notes.append(("kb", f"inserted {', '.join(inserted)}"))
    # Sent whole, a quoted notification to agents (an internal note, the footer with the
    # agent's signed addresses) would reach the requester: then nothing is sent.
    leaks = extracted.how == WHOLE and quotes_signed_address(body, ctx.tickets.support_address)
    if internal:
        _note(decision, ticket, ctx, me, body)
    elif body.strip() and not leaks:
        _relay(decision, ticket, ctx, me, reply, outcome)
        if extracted.how == WHOLE:
            decision.notes.append(("reply_whole", _WHOLE_NOTE))
    else:
        decision.kind, decision.internal = MessageKind.NOTE, True
        if not block.commands:
            why = ("reply_not_sent", _LEAKS) if leaks else ("reply_empty", _EMPTY)
            _tell_not_sent(decision, me, *why)
    owner = outcome.new_owner
    if owner is not None and owner.address != me.address:
        said = body if body.strip() else ""
        tell_new_owner(decision, ticket, ctx, me, Address(owner.name, owner.address), said)
    if outcome.applied:
        decision.notices.append(
            Notice(
                "command_confirm", [me], "agents", from_agent=me, extra={"applied": outcome.applied}
            )
        )
    decision.notices += files
    searches = find_results(block.commands, ctx)
    if searches:
        decision.notices.append(find_notice(me, searches))
    return decision


_WHOLE_NOTE = (
    "no answer was found above, below or between the quoted lines: the whole message "
    "was sent to the requester"
)
_EMPTY = "the message has no text of its own, so there was nothing to send"
_LEAKS = (
    "no answer of yours was found apart from the quoted notification, which is for "
    "agents only (it carries your signed addresses): nothing was sent to the requester; "
    "write your answer above the quote"
)


def _tell_not_sent(decision: Decision, me: Address, kind: str, why: str) -> None:
    """An agent's mail with nothing to relay and no command: kept as a note (an event of
    `kind`), and the agent is told that the requester got nothing (rather than left to
    think the answer went out)."""
    decision.notes.append((kind, why))
    extra = {"errors": [why], "commands": []}
    decision.notices.append(Notice("command_error", [me], "agents", from_agent=me, extra=extra))


def _refuse(decision: Decision, me: Address, errors: list[str], block: object) -> Decision:
    """Store the message as an internal note, change nothing, and tell the agent why."""
    decision.kind, decision.internal = MessageKind.NOTE, True
    decision.changes, decision.notices = [], []
    decision.notes.append(("commands_refused", "; ".join(errors)))
    commands = list(getattr(block, "commands", []))
    decision.notices.append(
        Notice(
            "command_error",
            [me],
            "agents",
            from_agent=me,
            extra={"errors": errors, "commands": [c.line for c in commands]},
        )
    )
    return decision


def _relay(
    decision: Decision,
    ticket: TicketState,
    ctx: DecideContext,
    me: Address,
    reply: Reply,
    outcome: _Outcome,
) -> None:
    decision.kind = MessageKind.AGENT_REPLY
    if ticket.first_response_at is None:
        decision.changes.append(Change("first_response_at", ctx.now, "first agent reply"))
    if ticket.status is Status.NEW and not any(c.field == "status" for c in outcome.changes):
        decision.changes.append(Change("status", Status.OPEN, "agent replied"))
    requester = Address(ticket.requester_name, ticket.requester)
    ccs = [Address("", a) for a, role in ticket.participants.items() if role == "cc"]
    ccs += [a for a, role in outcome.participants if role == "cc"]
    decision.notices.append(
        Notice(
            "agent_reply",
            [requester],
            "requester",
            automatic=False,
            cc=ccs,
            from_agent=me,
            body_text=reply.text,
            body_html=reply.html,
            attachments=reply.files,
        )
    )
    readers = [w for w in watchers(ticket, ctx.rules) if w.address != me.address]
    if readers:  # watchers follow the conversation: the reply as the requester got it
        decision.notices.append(
            Notice(
                WATCHER_COPY,
                readers,
                "agents",
                from_agent=me,
                body_text=reply.text,
                body_html=reply.html,
                attachments=reply.files,
            )
        )


def _note(
    decision: Decision, ticket: TicketState, ctx: DecideContext, me: Address, body: str
) -> None:
    """An internal note: stored, and sent only to the other agents on the ticket."""
    decision.kind, decision.internal = MessageKind.NOTE, True
    readers = ticket_agents(ticket, ctx.rules)
    others = [a for a in readers if a.address != me.address]
    if others and body.strip():
        decision.notices.append(Notice("note", others, "agents", from_agent=me, body_text=body))


def _check(
    commands: list[Command],
    ticket: TicketState,
    ctx: DecideContext,
    agent: Agent,
    find_ticket: Callable[[str], TicketState | None],
) -> _Outcome:
    """Turn commands into changes, or explain what is wrong with each."""
    out = _Outcome()
    reason = f"command from {agent.name}"
    for command in commands:
        arg = command.argument.strip()
        if command.name == "status":
            wanted = Status(arg)
            problem = transition_problem(ticket.status, wanted)
            if problem:
                out.errors.append(f"'{command.line}': {problem}")
            else:
                out.changes.append(Change("status", wanted, reason))
                out.applied.append(f"status {ticket.status.value} -> {wanted.value}")
        elif command.name == "assign":
            target = agent if arg.lower() == "me" else ctx.rules.find_agent(arg)
            if target is None:
                names = ", ".join(sorted(a.key for a in ctx.rules.agents.values()))
                out.errors.append(f"'{command.line}': no agent called {arg} (agents: {names})")
            else:
                out.changes.append(Change("assignee", target.address, reason))
                out.applied.append(f"assigned to {target.name}")
                out.new_owner = target if target.address != ticket.assignee else None
        elif command.name == "priority":
            out.changes.append(Change("priority", Priority(arg), reason))
            out.applied.append(f"priority {ticket.priority.value} -> {arg}")
        elif command.name == "queue":
            if arg not in ctx.rules.queues:
                names = ", ".join(sorted(ctx.rules.queues))
                out.errors.append(f"'{command.line}': no queue called {arg} (queues: {names})")
            else:
                out.changes.append(Change("queue", arg, reason))
                out.applied.append(f"queue {ticket.queue} -> {arg}")
        elif command.name == "tag":
            out.changes.append(Change("tag", arg, reason))
            out.applied.append(f"tagged {arg}")
        elif command.name == "cc":
            address = arg.strip("<>").lower()
            out.participants.append((Address("", address), "cc"))
            out.applied.append(f"{address} added in Cc")
        elif command.name == "merge":
            _merge(command, ticket, find_ticket, out, reason)
    return out


def _merge(
    command: Command,
    ticket: TicketState,
    find_ticket: Callable[[str], TicketState | None],
    out: _Outcome,
    reason: str,
) -> None:
    target = find_ticket(command.argument.strip())
    if target is None:
        out.errors.append(f"'{command.line}': there is no ticket {command.argument}")
        return
    if target.id == ticket.id:
        out.errors.append(f"'{command.line}': a ticket cannot be merged into itself")
        return
    out.merge_into = target
    out.changes.append(Change("merged_into_id", target.id, f"{reason}: merged into {target.ref}"))
    if ticket.status is not Status.CLOSED:
        out.changes.append(Change("status", Status.CLOSED, f"merged into {target.ref}"))
    out.applied.append(f"merged into {target.ref}")
