"""What an agent's forward of a customer's mail does to the decision (pure).

`decide.forwards` reads the forward and checks whose it is; `inbound` decides about
the forwarded mail as if the customer had sent it to the desk. This adds the rest:
the agent's words kept as an internal note, the forwarding agent told which ticket it
became, and the acknowledgement to the customer only when `tickets.forward_ack`.
"""

from __future__ import annotations

from maildesk.decide.audience import adding
from maildesk.decide.decision import DecideContext, Decision, ForwardedBy, Notice
from maildesk.decide.forwards import Forward

FORWARD_UNVERIFIED = "forward_unverified"


def on_behalf(forward: Forward, decision: Decision, ctx: DecideContext) -> Decision:
    """`decision` (about the forwarded mail) as the forward's: note, notices, log."""
    assert forward.original is not None, "an unverified forward is the agent's own mail"
    agent = forward.agent
    decision.forwarded = ForwardedBy(agent, forward.note, forward.original)
    decision.notes.append(
        (
            "forwarded",
            f"forwarded ({forward.how}) by {agent.name or agent.address} on behalf of "
            f"{forward.original_from}: {forward.verdict.reason}",
        )
    )
    if decision.new_ticket is not None and not ctx.tickets.forward_ack:
        decision.notices = [n for n in decision.notices if n.audience != "requester"]
    told = {"name": agent.name or agent.address, "note": forward.note}
    for notice in decision.notices:
        if notice.template in ("new_ticket", "customer_reply"):
            notice.to = adding(notice.to, [agent])  # so they know which ticket it became
            notice.extra["forwarded_by"] = told
            break
    else:
        decision.notices.append(
            Notice(
                "new_ticket" if decision.new_ticket else "customer_reply",
                [agent],
                "agents",
                body_text=forward.original.text,
                on_behalf_of=forward.original.sender,
                extra={"forwarded_by": told},
            )
        )
    return decision


def unverified_forward(forward: Forward, decision: Decision) -> Decision:
    """A forward nothing proves to be the agent's: `decision` opens a ticket for the agent
    (its sender), no acknowledgement goes anywhere, and the agent is told why."""
    reason = forward.verdict.reason
    decision.notices = [n for n in decision.notices if n.audience != "requester"]
    decision.notes.append((FORWARD_UNVERIFIED, f"not opened for {forward.original_from}: {reason}"))
    extra = {"reason": reason, "original_from": forward.original_from}
    decision.notices.append(
        Notice(FORWARD_UNVERIFIED, [forward.agent], "agents", from_agent=forward.agent, extra=extra)
    )
    return decision
