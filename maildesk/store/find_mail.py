"""`#find` by mail, the store's half: run a batch's searches before deciding, and queue
the answer to a fresh `#find` mail, which belongs to no ticket."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import AUTO_REPLIED
from maildesk.common.message_ids import new_message_id
from maildesk.common.search_query import QueryError, SearchHit
from maildesk.decide.agent_find import FIND_RESULTS
from maildesk.decide.commands import parse_commands
from maildesk.decide.decision import Decision, Notice
from maildesk.decide.notices import per_reader
from maildesk.decide.template_context import ticketless_context
from maildesk.intake.message import ParsedMessage
from maildesk.store.models import AnsweredMail, OutboxEntry
from maildesk.store.outbox import pending_row
from maildesk.store.search import SearchFilters, search_tickets
from maildesk.store.writer import add_receipt

_FIND = re.compile("#find", re.IGNORECASE)  # a scan, not a lowered copy of every body


def run_find_commands(
    session: Session, messages: Iterable[ParsedMessage], is_agent: Callable[[str], bool]
) -> dict[str, tuple[SearchHit, ...]]:
    """The tickets each `#find QUERY` of the agents' messages finds, by QUERY.

    Nobody else's `#find` is searched: from them it is plain text.
    """
    found: dict[str, tuple[SearchHit, ...]] = {}
    for msg in messages:
        if not _FIND.search(msg.text) or not is_agent(msg.from_addr):
            continue
        for command in parse_commands(msg.text).named("find"):
            query = command.argument.strip()
            if query not in found:
                try:
                    hits = search_tickets(session, query, SearchFilters(limit=FIND_RESULTS))
                except QueryError:
                    continue  # the deciding step explains it to the agent
                found[query] = tuple(hits)
    return found


def answered_before(session: Session, messages: Iterable[ParsedMessage]) -> set[str]:
    """The dedup keys of those `#find` mails that were answered already (answer_ticketless)."""
    keys = list({m.dedup_key for m in messages if _FIND.search(m.text)})
    if not keys:
        return set()
    query = select(AnsweredMail.dedup_key).where(AnsweredMail.dedup_key.in_(keys))
    return set(session.scalars(query))


def answer_ticketless(
    session: Session,
    msg: ParsedMessage,
    decision: Decision,
    receipt: tuple[str, int, int] | None,
    config: Config,
    now: datetime,
) -> list[str]:
    """Queue the notices of a decision about no ticket and record that the mail was
    answered, and its receipt (the mail itself is not stored); the notices' Message-IDs."""
    rows = [
        _row(single, msg, config, now)
        for notice in decision.notices
        for single in per_reader(notice)
    ]
    if rows:
        session.execute(insert(OutboxEntry), rows)
    session.add(AnsweredMail(dedup_key=msg.dedup_key, answered_at=now))
    if receipt:
        add_receipt(session, receipt, msg.dedup_key, "answered", now)
    return [row["message_id"] for row in rows]


def _row(notice: Notice, msg: ParsedMessage, config: Config, now: datetime) -> dict[str, Any]:
    answering = [msg.message_id] if msg.message_id else []
    headers = {
        "to": [[a.name, a.address] for a in notice.to],
        "cc": [],
        "on_behalf_of": None,
        "in_reply_to": msg.message_id,
        "references": answering,
        "auto_submitted": AUTO_REPLIED if notice.automatic else None,
        "thread_root": None,
        "thread_depth": len(answering),
    }
    return pending_row(
        notice,
        ticket_id=None,
        recipients=[a.address for a in notice.to],
        envelope_from=config.tickets.support_address,
        message_id=new_message_id(notice.template.replace("_", "-"), config.tickets.id_domain),
        language=config.tickets.language,
        context=ticketless_context(notice, msg, config),
        headers=headers,
        now=now,
    )
