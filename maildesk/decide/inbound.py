"""The deciding step: a parsed message plus the ticket it threads into -> a Decision.

Pure: no database, no network, no clock other than `ctx.now`. The store applies the
Decision in one transaction, so everything here can be tested with plain data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from maildesk.common.domain import Author, MessageKind, Status, TicketState
from maildesk.common.thread_index import root_from_header
from maildesk.decide.agent_find import find_without_ticket
from maildesk.decide.agent_identity import verify_agent
from maildesk.decide.agent_mail import agent_mail
from maildesk.decide.assignment import assigned_by
from maildesk.decide.audience import (
    adding,
    agent_address,
    assignee_or_queue,
    assignee_or_queue_of,
    watchers,
)
from maildesk.decide.author import classify_author, copied_people, is_customer, join_reason
from maildesk.decide.decision import Change, DecideContext, Decision, NewTicket, Notice
from maildesk.decide.forward_decision import on_behalf, unverified_forward
from maildesk.decide.forwards import Forward, forward_on_behalf
from maildesk.decide.lifecycle import customer_reply_status
from maildesk.decide.notice_files import relay_customer_files
from maildesk.decide.notices import status_notices
from maildesk.decide.satisfaction import rating_fields, rating_reply
from maildesk.decide.sla import pause_changes, priority_changes
from maildesk.intake.message import Address, ParsedMessage, human_size
from maildesk.triage.language import detect_language, language_text
from maildesk.triage.list_author import relay_note
from maildesk.triage.robots import robot_recipient
from maildesk.triage.screen import MailClass, Screening
from maildesk.triage.thread_keys import strip_token

__all__ = ["classify_author", "decide", "sets_aside"]

OVERSIZED_TAG = "oversized"
HELD_TAG = "held"
LIST_AUTHOR = "list_author"  # event: the author of a post whose From a list rewrote


def decide(msg: ParsedMessage, ticket: TicketState | None, ctx: DecideContext) -> Decision:
    """Decide what `msg` does: open a ticket, or add to `ticket` and change it."""
    forward = forward_on_behalf(msg, ticket, ctx)
    decision = _decide(msg, ticket, ctx) if forward is None else _forwarded(forward, ticket, ctx)
    if not decision.ticketless:
        _size_limits(decision.forwarded.original if decision.forwarded else msg, ctx, decision)
        relayed = relay_note(ctx.screening, msg.from_addr)
        if relayed:  # agents see whose the mail is taken to be, and why
            decision.notes.insert(0, (LIST_AUTHOR, relayed))
    return decision


def _decide(msg: ParsedMessage, ticket: TicketState | None, ctx: DecideContext) -> Decision:
    if ticket is not None:
        author = classify_author(msg, ticket, ctx)
        if author is Author.UNVERIFIED:
            return _unverified_agent(msg, ticket, ctx)
        if author is Author.STRANGER:
            if ctx.tickets.stranger_with_token == "hold":
                return _held(msg, ticket, ctx)
            # Ticket numbers can be guessed: naming one is no reason to join it.
            why = f"{msg.from_addr} named {ticket.ref} but is not on it"
            return _new_ticket(msg, ctx, linked_from=ticket, link_note=why, because="named")
        if (
            ticket.status is Status.CLOSED
            and ctx.tickets.reply_to_closed == "new"
            and author is not Author.AGENT
            and _automatic_kind(ctx.screening) is None
            and not _is_rating(msg, ticket, ctx)  # a late rating of an auto-closed ticket
        ):
            why = f"reply to closed ticket {ticket.ref}"
            return _new_ticket(msg, ctx, linked_from=ticket, link_note=why, because="closed")
    if ticket is None:
        return find_without_ticket(msg, ctx) or _new_ticket(msg, ctx)
    return _with_clocks(_follow_up(msg, ticket, ctx), ticket, ctx)


def _with_clocks(decision: Decision, ticket: TicketState, ctx: DecideContext) -> Decision:
    """What a follow-up's changes bring along: status notices, SLA pause and priority."""
    decision.notices.extend(status_notices(ticket, decision.changes))
    decision.changes.extend(_sla_pause(ticket, decision.changes, ctx))
    decision.changes.extend(priority_changes(ticket, decision.changes, ctx.rules))
    return decision


def _forwarded(forward: Forward, ticket: TicketState | None, ctx: DecideContext) -> Decision:
    """An agent's forward of a customer's mail: the customer's ticket (a new one, or theirs
    the forward names), the agent's words an internal note. Unproven, nothing in it is
    believed: it opens a ticket for the agent, who is told why."""
    original = forward.original
    if original is None:
        return unverified_forward(forward, _new_ticket(forward.mail, ctx))
    if (
        ticket is not None
        and ticket.is_participant(original.from_addr)
        and ticket.status is not Status.CLOSED
    ):
        # The agent vouches for the customer's mail: whom it copied joins, as ever.
        vouched = replace(ctx, in_conversation=True)
        decision = _with_clocks(_follow_up(original, ticket, vouched), ticket, ctx)
    else:
        decision = _new_ticket(original, ctx)
    return on_behalf(forward, decision, ctx)


def _sla_pause(ticket: TicketState, changes: list[Change], ctx: DecideContext) -> list[Change]:
    """Stop the resolution clock while the ticket waits for the customer (if configured)."""
    # The status the mail leaves ("#status open" then "#status pending": pending).
    new_status = next((Status(c.value) for c in reversed(changes) if c.field == "status"), None)
    if not ctx.tickets.pause_sla_when_pending or new_status is None:
        return []
    policy = ctx.rules.sla_policies.get(ticket.sla_policy or "")
    return pause_changes(
        old_status=ticket.status,
        new_status=new_status,
        state=ticket.sla_state,
        resolution_due=ticket.resolution_due,
        calendar=policy.calendar if policy else None,
        now=ctx.now,
    )


def _held(msg: ParsedMessage, claimed: TicketState, ctx: DecideContext) -> Decision:
    """A stranger's mail naming someone else's ticket, kept apart for an agent to approve.

    It becomes a ticket of its own, tagged `held`, with no acknowledgement; the agents
    are told which ticket it claims, and can fold it in with `#merge` if it belongs.
    """
    decision = _new_ticket(msg, ctx)
    assert decision.new_ticket is not None
    decision.new_ticket.tags.append(HELD_TAG)
    decision.notices = [n for n in decision.notices if n.audience != "requester"]
    for notice in decision.notices:
        notice.extra["held_for"] = claimed.ref
    decision.notes.append(
        (
            "held",
            f"{msg.from_addr} is not on {claimed.ref}: held for an agent's approval "
            f"(#merge {claimed.ref} to add it there)",
        )
    )
    return decision


def _unverified_agent(msg: ParsedMessage, ticket: TicketState, ctx: DecideContext) -> Decision:
    """Mail from an agent's address that nothing proves to be the agent's: kept as an
    internal note marked unverified; no command, no relay, no new participant. The agent
    (at their real address) is told why, unless the mail is automatic."""
    agent = ctx.rules.agent_by_address(msg.from_addr)
    assert agent is not None
    reason = verify_agent(msg, ticket, agent.address, ctx).reason
    decision = Decision(
        author=Author.UNVERIFIED,
        kind=MessageKind.NOTE,
        actor=msg.from_addr,
        screening=ctx.screening,
        ticket_id=ticket.id,
        internal=True,
    )
    decision.notes.append(("unverified", f"not verified as {agent.name}'s mail: {reason}"))
    if _automatic_kind(ctx.screening) is None:
        me = Address(agent.name, agent.address)
        extra = {"reason": reason, "received_subject": msg.subject}
        decision.notices.append(
            Notice("agent_unverified", [me], "agents", from_agent=me, extra=extra)
        )
    return decision


def _new_ticket(
    msg: ParsedMessage,
    ctx: DecideContext,
    linked_from: TicketState | None = None,
    link_note: str = "",
    because: str = "",
) -> Decision:
    if msg.dedup_key in ctx.languages:  # told for the whole batch at once
        language = ctx.languages[msg.dedup_key]
    else:
        language = detect_language(language_text(msg))
    facts = replace(ctx.facts, language=language)
    routing = ctx.rules.evaluate(msg, ticket=None, facts=facts)
    requester = msg.sender or Address("", "unknown@invalid")
    queue = routing.queue or ctx.rules.default_queue
    new = NewTicket(
        subject=strip_token(msg.subject, ctx.tickets.prefix) or "(no subject)",
        requester=requester,
        queue=queue,
        priority=routing.priority or ctx.rules.default_priority,
        assignee=routing.assignee,
        language=routing.language or ctx.rules.queue_language(queue),
        tags=list(routing.tags),
        sla_policy=routing.sla_policy,
        first_response_due=routing.first_response_due,
        resolution_due=routing.resolution_due,
        spam=routing.spam,
        linked_from=linked_from.id if linked_from else None,
        assign_strategy=routing.assign_strategy,
        assign_choice=routing.assign_choice,
        thread_index=root_from_header(msg.header("Thread-Index")),
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
    decision.participants = [
        *((a, "cc") for a in msg.cc + msg.to if is_customer(a.address, ctx)),
        *((Address("", c), "cc") for c in routing.cc),
        *((agent_address(w, ctx.rules), "watcher") for w in routing.watchers),
    ]
    if linked_from:
        decision.notes.append(("linked", link_note or f"linked to {linked_from.ref}"))
    # Automatic mail that matches no ticket is set aside before it gets here (sets_aside);
    # should it come (a caller that decides without that step), it stays quiet: telling
    # anyone about it is how two robots start a conversation.
    quiet = routing.spam or routing.ignore or kind is not MessageKind.REQUEST
    if routing.auto_reply and not quiet and msg.sender is not None and _may_auto_reply(ctx, msg):
        decision.notices.append(Notice(routing.auto_reply, [requester], "requester"))
    # Spam and ignored mail reach only the addresses a rule names in `notify`.
    agents = [] if quiet else assignee_or_queue_of(new.assignee, queue, ctx.rules)
    extra = routing.notify if quiet else [*routing.watchers, *routing.notify]
    agents = adding(agents, [agent_address(a, ctx.rules) for a in extra])
    if agents:
        linked = {"linked_to": {"ref": linked_from.ref, "because": because}} if linked_from else {}
        if new.assignee:  # the assignee's copy is how they hear it is theirs (and who said so)
            linked["assigned_by"] = assigned_by(new, routing.hits)
        notice = Notice("new_ticket", agents, "agents", body_text=msg.text, on_behalf_of=msg.sender)
        notice.extra.update(linked)
        decision.notices.append(relay_customer_files(notice, msg, ctx, attach=not quiet))
    return decision


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
        return agent_mail(
            msg,
            ticket,
            ctx,
            decision,
            find_ticket=ctx.find_ticket or (lambda ref: None),
            articles=list(ctx.kb_articles),
        )
    if _rating(msg, ticket, ctx, decision):
        return decision
    facts = replace(ctx.facts, language=ticket.language)
    routing = ctx.rules.evaluate(msg, ticket=ticket, facts=facts)
    decision.rule_hits = list(routing.hits)
    _apply_follow_up_routing(routing, ticket, decision)
    status = customer_reply_status(
        ticket.status, msg.text, thanks_keeps_resolved=ctx.tickets.thanks_keeps_resolved
    )
    if status is not None:
        decision.changes.append(
            Change("status", status, f"customer replied to a {ticket.status} ticket")
        )
    elif ticket.status is Status.RESOLVED:
        decision.notes.append(("thanks", "a thank-you on a resolved ticket: it stays resolved"))
    decision.participants = copied_people(msg, ticket, ctx, decision)
    if author is Author.PARTICIPANT and msg.sender and not ticket.is_participant(msg.from_addr):
        decision.participants.insert(0, (msg.sender, "cc"))
        why = join_reason(msg.from_addr, ticket, ctx)
        decision.notes.append(("joined", f"{msg.from_addr} joined: {why}"))
    agents = adding(assignee_or_queue(ticket, ctx.rules), watchers(ticket, ctx.rules))
    agents = adding(agents, [agent_address(a, ctx.rules) for a in routing.notify])
    agents = [a for a in agents if a.address != msg.from_addr]
    if agents:
        notice = Notice(
            "customer_reply", agents, "agents", body_text=msg.text, on_behalf_of=msg.sender
        )
        decision.notices.append(relay_customer_files(notice, msg, ctx))
    return decision


def _rating_reply(msg: ParsedMessage, ticket: TicketState, ctx: DecideContext) -> Any:
    resolved = ticket.status in (Status.RESOLVED, Status.CLOSED)
    return rating_reply(
        msg.text, ref=ticket.ref, resolved=resolved, secret=ctx.rating_secret, now=ctx.now
    )


def _is_rating(msg: ParsedMessage, ticket: TicketState, ctx: DecideContext) -> bool:
    return _rating_reply(msg, ticket, ctx) is not None


def _rating(
    msg: ParsedMessage, ticket: TicketState, ctx: DecideContext, decision: Decision
) -> bool:
    """A reply that rates a resolved ticket is stored as its rating and reopens nothing."""
    reply = _rating_reply(msg, ticket, ctx)
    if reply is None:
        return False
    for name, value in rating_fields(reply, ctx.now).items():
        decision.changes.append(Change(name, value, f"satisfaction rating by {msg.from_addr}"))
    decision.notes.append(("rated", f"rated {reply.rating} of 5"))
    return True


def _apply_follow_up_routing(routing: Any, ticket: TicketState, decision: Decision) -> None:
    reason = "rule " + ", ".join(routing.hits) if routing.hits else "rule"
    if routing.priority and routing.priority.rank > ticket.priority.rank:
        decision.changes.append(Change("priority", routing.priority, reason))
    if routing.queue and routing.queue != ticket.queue:
        decision.changes.append(Change("queue", routing.queue, reason))
    for tag in routing.tags:
        if tag not in ticket.tags:
            decision.changes.append(Change("tag", tag, reason))


def _size_limits(msg: ParsedMessage, ctx: DecideContext, decision: Decision) -> None:
    """Over a size limit: log what was not kept, tag the ticket, tell the sender why."""
    notes = []
    if msg.oversized:
        notes.append(f"{msg.oversized}; only its headers were read")
    notes += [
        f"attachment {d.filename!r} ({human_size(d.size)}) not kept: {d.reason}"
        for d in msg.dropped
    ]
    if not notes:
        return
    decision.notes.extend(("size_limit", note) for note in notes)
    if decision.new_ticket is not None:
        decision.new_ticket.tags.append(OVERSIZED_TAG)
    else:
        decision.changes.append(Change("tag", OVERSIZED_TAG, "message over a size limit"))
    if msg.sender is None or not _may_auto_reply(ctx, msg) or not _writes_back(decision):
        return
    details = {
        "message": msg.oversized,
        "attachments": [
            {"name": d.filename, "size": human_size(d.size), "reason": d.reason}
            for d in msg.dropped
        ],
    }
    decision.notices.append(
        Notice("oversized", [msg.sender], "requester", extra={"oversized": details})
    )


def _writes_back(decision: Decision) -> bool:
    """Whether the desk writes to the mail's sender at all: not to the customer of an
    agent's forward (who never wrote to the desk), nor about held, spam or ignored mail."""
    new = decision.new_ticket
    quiet = new is not None and (new.spam or {HELD_TAG, "ignored"} & set(new.tags))
    return decision.forwarded is None and not quiet


def sets_aside(screening: Screening, ticket: TicketState | None) -> bool:
    """Automatic mail (a bounce, a complaint, an auto-reply, our own mail) that matches
    no ticket is kept apart (store.automatic), never a ticket of its own: it would sit in
    the agents' queue with an SLA clock running. List mail is mail: it opens a ticket."""
    return ticket is None and _automatic_kind(screening) is not None


def _automatic_kind(screening: Screening) -> MessageKind | None:
    if screening.kind is MailClass.BOUNCE:
        return MessageKind.BOUNCE
    if screening.kind in (MailClass.AUTO_REPLY, MailClass.OWN):
        return MessageKind.AUTO_REPLY
    return None


def _may_auto_reply(ctx: DecideContext, msg: ParsedMessage) -> bool:
    """Not to automatic mail, not over the hourly limit, never to a robot's address."""
    if robot_recipient(msg.from_addr, msg):
        return False
    return ctx.screening.may_auto_reply and ctx.auto_replies_last_hour < ctx.auto_reply_limit
