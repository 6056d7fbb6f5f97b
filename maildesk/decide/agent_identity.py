"""Is mail from an agent's address the agent's? Only what a stranger cannot forge decides.

A reply counts as the agent's when it came back through the signed reply address we
gave that agent for that ticket (`triage.reply_tokens`), or when the desk's own mail
server vouches for it in a trusted Authentication-Results header (`triage.agent_auth`).
With `require_agent_auth` the mail server must vouch in any case. Anything else from an
agent's address is unverified: it changes nothing and reaches no customer. So is a post
whose From a list rewrote (`triage.list_author`), whatever its headers say.
"""

from __future__ import annotations

from dataclasses import dataclass

from maildesk.common.domain import TicketState
from maildesk.decide.decision import DecideContext
from maildesk.intake.message import ParsedMessage
from maildesk.triage.agent_auth import authenticate_agent
from maildesk.triage.reply_tokens import ReplyCheck, addressed_to, check_forward, check_reply

RELAYED = "a list relayed this mail and rewrote its From: nothing proves who wrote it"


@dataclass(frozen=True)
class Verdict:
    """Whether mail is taken as the agent's, and the reason (told to the agent if not)."""

    verified: bool
    reason: str


def verify_agent(
    msg: ParsedMessage, ticket: TicketState, agent: str, ctx: DecideContext
) -> Verdict:
    """Whether `msg`, from `agent`'s address about `ticket`, is the agent's own mail."""
    tickets = ctx.tickets
    find = ctx.find_ticket

    def merged_here(ref: str) -> bool:  # the agent answers a ticket merged into this one
        found = find(ref) if find is not None else None
        return found is not None and found.id == ticket.id

    signed = check_reply(
        addressed_to(msg),
        support=tickets.support_address,
        ref=ticket.ref,
        agent=agent,
        keys=ctx.reply_keys,
        now=ctx.now,
        merged_here=merged_here,
    )
    return _verdict(msg, agent, ctx, signed)


def verify_forward(msg: ParsedMessage, agent: str, ctx: DecideContext) -> Verdict:
    """Whether `msg`, from `agent`'s address and about no ticket, is the agent's own: sent
    to the agent's signed forwarding address, or vouched for by the mail server."""
    tickets = ctx.tickets
    signed = check_forward(
        addressed_to(msg),
        support=tickets.support_address,
        agent=agent,
        keys=ctx.reply_keys,
        now=ctx.now,
    )
    return _verdict(msg, agent, ctx, signed)


def _verdict(msg: ParsedMessage, agent: str, ctx: DecideContext, signed: ReplyCheck) -> Verdict:
    tickets = ctx.tickets
    relayed_by = ctx.screening.relayed_by
    if relayed_by:  # the server's verdict is on the list; the author is a header's word
        return Verdict(False, f"{RELAYED} (list {relayed_by} rewrote From)")
    vouched = authenticate_agent(msg, agent, tickets) if tickets.trusted_authserv else None
    if tickets.require_agent_auth:
        assert vouched is not None, "require_agent_auth needs trusted_authserv (config checks)"
        return Verdict(vouched.vouched, _server_words(vouched.reason, vouched.vouched))
    if tickets.agent_verification == "none":
        return Verdict(True, "agent verification is off (tickets.agent_verification: none)")
    if signed.signed:
        return Verdict(True, signed.reason)
    if vouched is not None and vouched.vouched:
        return Verdict(True, vouched.reason)
    reasons = [signed.reason]
    if vouched is not None:
        reasons.append(_server_words(vouched.reason, False))
    return Verdict(False, "; ".join(reasons))


def _server_words(reason: str, vouched: bool) -> str:
    if vouched:
        return reason
    return f"your mail server did not vouch that this mail comes from you: {reason}"
