"""`#find QUERY` from an agent: the tickets the store found, mailed back (pure).

In a reply about a ticket it is one more command. A fresh mail to the desk that starts
with `#find` is answered alone: no ticket is opened, the mail is not stored, and any
other command in it is reported as needing a ticket. The searches themselves ran in
the store before deciding (ctx.searches).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from maildesk.common.domain import Author, MessageKind
from maildesk.common.search_query import SearchHit
from maildesk.decide.commands import Command, parse_commands
from maildesk.decide.decision import DecideContext, Decision, Notice
from maildesk.intake.message import Address, ParsedMessage
from maildesk.triage.agent_auth import authenticate_agent

FIND_RESULTS = 10  # tickets listed per #find
FIND_TEMPLATE = "find_results"
_FIRST_LINE_FIND = re.compile(r"\s*#find\b", re.IGNORECASE)

Searches = list[tuple[str, Sequence[SearchHit]]]


def find_results(commands: Sequence[Command], ctx: DecideContext) -> Searches:
    """Each #find's query with the tickets the store found for it."""
    found = []
    for command in commands:
        if command.name == "find":
            query = command.argument.strip()
            found.append((query, ctx.searches.get(query, ())))
    return found


def find_notice(me: Address, searches: Searches, errors: Sequence[str] = ()) -> Notice:
    """The results mailed to the agent who asked, with what was wrong in the rest."""
    listed = [
        {"query": query, "results": [_hit(h) for h in hits[:FIND_RESULTS]]}
        for query, hits in searches
    ]
    extra = {"searches": listed, "errors": list(errors), "limit": FIND_RESULTS}
    return Notice(FIND_TEMPLATE, [me], "agents", from_agent=me, extra=extra)


def _hit(hit: SearchHit) -> dict[str, Any]:
    return {
        "ref": hit.ref,
        "subject": hit.subject,
        "status": hit.status,
        "queue": hit.queue,
        "assignee": hit.assignee or "",
        "updated_at": hit.updated_at,
        "snippet": hit.snippet,
    }


def find_without_ticket(msg: ParsedMessage, ctx: DecideContext) -> Decision | None:
    """An agent's fresh mail starting with `#find`, answered with no ticket; None for any
    other mail (it opens a ticket as usual)."""
    agent = ctx.rules.agent_by_address(msg.from_addr)
    if agent is None or ctx.screening.automatic or not _FIRST_LINE_FIND.match(msg.text):
        return None
    if ctx.screening.relayed_by:  # a list rewrote From: its author is nobody's proof
        return None
    required = ctx.tickets.require_agent_auth
    if required and not authenticate_agent(msg, agent.address, ctx.tickets).vouched:
        return None  # never shown to whoever wrote the agent's address
    block = parse_commands(msg.text)
    errors = block.errors + [
        f"'{c.line}': only #find works in a mail about no ticket; to change a ticket, "
        "reply to one of its notifications"
        for c in block.commands
        if c.name != "find"
    ]
    decision = Decision(
        author=Author.AGENT,
        kind=MessageKind.NOTE,
        actor=agent.address,
        screening=ctx.screening,
        internal=True,
        commands=[c.line for c in block.commands],
    )
    me = Address(agent.name, agent.address)
    decision.notices.append(find_notice(me, find_results(block.commands, ctx), errors))
    return decision
