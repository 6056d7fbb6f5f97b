"""Who wrote a message, relative to the ticket it threads into, and why a newcomer may join.

Pure, like the rest of `decide`: an agent only with proof (agent_identity); anyone else
joins a conversation only as the ticket's queue allows.
"""

from __future__ import annotations

from maildesk.common.domain import Author, TicketState
from maildesk.decide.agent_identity import verify_agent
from maildesk.decide.decision import DecideContext, Decision
from maildesk.intake.message import Address, ParsedMessage
from maildesk.triage.reply_tokens import base_address
from maildesk.triage.screen import MailClass


def classify_author(msg: ParsedMessage, ticket: TicketState, ctx: DecideContext) -> Author:
    """Who wrote `msg`, relative to `ticket`: an agent only when proven (agent_identity)."""
    sender = msg.from_addr
    agent = ctx.rules.agent_by_address(sender)
    if agent is not None:
        verified = verify_agent(msg, ticket, agent.address, ctx).verified
        return Author.AGENT if verified else Author.UNVERIFIED
    if sender == ticket.requester:
        return Author.REQUESTER
    if sender in ticket.participants:
        return Author.PARTICIPANT
    if ctx.screening.kind in (MailClass.BOUNCE, MailClass.AUTO_REPLY, MailClass.OWN):
        # Daemons and out-of-office robots answer from addresses we never saw, and our
        # own notifications come back from the support address.
        return Author.SYSTEM
    if ctx.referenced or _colleague(sender, ticket, ctx) or _list_reader(ticket, ctx):
        return Author.PARTICIPANT  # joins the conversation
    return Author.STRANGER


def join_reason(sender: str, ticket: TicketState, ctx: DecideContext) -> str:
    """Why `sender`, a participant by classify_author, may join `ticket` (for its event log)."""
    if ctx.referenced:
        return "their mail answers this ticket's conversation"
    if _colleague(sender, ticket, ctx):
        return f"the requester's domain, and queue {ticket.queue} lets colleagues join"
    return f"their mail answers a post of this ticket, and queue {ticket.queue} is a list"


def _list_reader(ticket: TicketState, ctx: DecideContext) -> bool:
    """In a `participants: list` queue (a public list, whose every post each subscriber
    got), whoever answers a message of the ticket may join; naming its number is not enough."""
    queue = ctx.rules.queues.get(ticket.queue)
    return ctx.answers and queue is not None and queue.participants == "list"


def _colleague(sender: str, ticket: TicketState, ctx: DecideContext) -> bool:
    """In a queue with `participants: same_domain`, the requester's colleagues may join."""
    queue = ctx.rules.queues.get(ticket.queue)
    if queue is None or queue.participants != "same_domain":
        return False
    domain = ticket.requester.rpartition("@")[2]
    return bool(domain) and sender.rpartition("@")[2] == domain


def is_customer(address: str, ctx: DecideContext) -> bool:
    """Not one of the desk's own addresses (support+anything@ too) nor an agent's."""
    if "@" not in address or base_address(address) in ctx.own_addresses:
        return False
    return ctx.rules.agent_by_address(address) is None


def copied_people(
    msg: ParsedMessage, ticket: TicketState, ctx: DecideContext, decision: Decision
) -> list[tuple[Address, str]]:
    """The customers a follow-up puts on To/Cc, who join the ticket; only when it answers
    the ticket's conversation: anyone can forge the requester's From and add themselves."""
    copied = [
        (a, "cc")
        for a in msg.cc + msg.to
        if is_customer(a.address, ctx) and not ticket.is_participant(a.address)
    ]
    if copied and not (ctx.in_conversation or ctx.referenced):
        names = ", ".join(a.address for a, _ in copied)
        reason = f"{names} not added: the mail answers none of this ticket's messages"
        decision.notes.append(("not_joined", f"{reason} (an agent's #cc adds them)"))
        return []
    return copied
