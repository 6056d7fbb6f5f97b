"""Telling agents who did not write a mail what it did: the new owner of a ticket, and
its watchers (pure).

Each person hears of one message once: an agent a ticket is assigned to gets the
`assigned` notice, which carries what the assigning agent wrote, and no other copy.
"""

from __future__ import annotations

from typing import Any

from maildesk.common.domain import TicketState
from maildesk.decide.decision import DecideContext, Decision, NewTicket, Notice
from maildesk.intake.message import Address

ASSIGNED = "assigned"
WATCHER_COPY = "agent_replied"  # an agent's reply to the requester, copied to the watchers
_COPIES = ("note", WATCHER_COPY)  # what the new owner would otherwise get as well


def tell_new_owner(
    decision: Decision,
    ticket: TicketState,
    ctx: DecideContext,
    me: Address,
    owner: Address,
    said: str,
) -> None:
    """`me` assigned `ticket` to `owner` with this mail: tell them, with the ticket's
    summary, the customer's latest mail and what `me` wrote (reply or note)."""
    for notice in decision.notices:
        if notice.audience == "agents" and notice.template in _COPIES:
            notice.to = [a for a in notice.to if a.address != owner.address]
    decision.notices = [n for n in decision.notices if n.to]
    last = ctx.last_message(ticket.id) if ctx.last_message is not None else None
    extra: dict[str, Any] = {
        "assigned_by": me.name or me.address,
        "last_message": {"from": last.sender, "date": last.date} if last else None,
        "said": {"text": said, "internal": decision.internal} if said else None,
    }
    decision.notices.append(
        Notice(
            ASSIGNED,
            [owner],
            "agents",
            from_agent=me,
            body_text=last.text if last else "",
            extra=extra,
        )
    )


def assigned_by(new: NewTicket, hits: list[str]) -> str:
    """Who gave a new ticket its assignee, in words: a strategy, or the rules."""
    if new.assign_strategy:
        return new.assign_strategy.replace("_", " ")
    return f"rule {', '.join(hits)}" if hits else "the default route"
