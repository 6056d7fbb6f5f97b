"""Write a batch of decided messages: one bulk INSERT per table, one UPDATE per ticket.

The deciding steps hand over each ticket's state before and after (`Plan`); the
writer inserts new tickets from their final state, updates existing ones with the
columns that changed, and adds the messages, attachments, participants, events,
thread references, receipts and outbox rows of the batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import Author, TicketState
from maildesk.decide.decision import Decision
from maildesk.decide.notices import QueuedNotice
from maildesk.decide.ticket_changes import TicketEvent
from maildesk.intake.blob_writer import InlineSink
from maildesk.intake.filenames import safe_filename
from maildesk.intake.message import ParsedMessage
from maildesk.store.assignment import record_assignment
from maildesk.store.blobs import BlobStore
from maildesk.store.bulk import Rows
from maildesk.store.models import (
    Attachment,
    Event,
    Message,
    OutboxEntry,
    Participant,
    Receipt,
    ThreadRef,
    Ticket,
)
from maildesk.store.outbox import outbox_rows
from maildesk.store.search import index_messages
from maildesk.store.ticket_rows import changed_values, event_rows, ticket_values

__all__ = ["Plan", "add_receipt", "write_plans"]


@dataclass
class Plan:
    """One decided message, ready to be written."""

    msg: ParsedMessage
    decision: Decision
    before: TicketState | None  # None when the message opens the ticket
    after: TicketState
    events: list[TicketEvent]
    queued: list[QueuedNotice]
    source: str
    receipt: tuple[str, int, int] | None
    now: datetime
    message_pk: int = 0
    note_pk: int = 0  # an agent's forward: the id of the row keeping the agent's own words
    new_thread_ref: bool = True  # the Message-ID is not in thread_refs yet
    # Stores the raw message, small ones through the given sink (a blobs row).
    keep_raw: Callable[[InlineSink], str] | None = field(default=None)


def write_plans(session: Session, plans: list[Plan], config: Config, blobs: BlobStore) -> None:
    """Insert every row for `plans` and update the tickets they change."""
    rows = Rows()
    created = {p.after.id for p in plans if p.before is None}
    first_seen: dict[int, TicketState] = {}  # existing tickets as loaded for this batch
    final: dict[int, TicketState] = {}
    for plan in plans:
        ticket_id = plan.after.id
        if plan.before is not None and ticket_id not in created:
            first_seen.setdefault(ticket_id, plan.before)
        final[ticket_id] = plan.after
        _write_plan(rows, plan, config, blobs)
    for ticket_id in created:
        rows.add(Ticket, **ticket_values(final[ticket_id]))
    rows.insert(session)
    index_messages(session, [(p.message_pk, p.after.ref, p.msg) for p in plans])
    _update_tickets(session, [(changed_values(b, final[i]), i) for i, b in first_seen.items()])
    _record_assignments(session, plans)
    session.flush()


def _update_tickets(session: Session, changes: list[tuple[dict[str, Any], int]]) -> None:
    """UPDATE the tickets that changed: one executemany per set of changed columns (on
    PostgreSQL, psycopg pipelines it: one round trip, not one per ticket)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for changed, ticket_id in changes:
        if changed:
            groups[tuple(sorted(changed))].append({**changed, "_ticket_id": ticket_id})
    table = Ticket.__table__
    statement = update(table).where(table.c.id == bindparam("_ticket_id"))
    for rows in groups.values():  # SET takes the columns of each group's rows
        session.connection().execute(statement, rows)


def _record_assignments(session: Session, plans: list[Plan]) -> None:
    """Round robin: remember each queue's last agent given a ticket by a strategy.

    Not when the strategy had only one agent to give it to: the next turn is the same
    either way, and the batch then touches no row another daemon's batch may want.
    """
    last_assigned: dict[str, str] = {}
    for plan in plans:
        new = plan.decision.new_ticket
        if new is not None and new.assign_choice and new.assignee:
            last_assigned[new.queue] = new.assignee
    for queue, agent in last_assigned.items():
        record_assignment(session, queue, agent)


def add_receipt(
    session: Session, receipt: tuple[str, int, int], key: str | None, outcome: str, now: datetime
) -> None:
    source, validity, uid = receipt
    session.add(
        Receipt(
            source=source, uidvalidity=validity, uid=uid, dedup_key=key, outcome=outcome, at=now
        )
    )


def _write_plan(rows: Rows, plan: Plan, config: Config, blobs: BlobStore) -> None:
    ticket_id, now = plan.after.id, plan.now
    if plan.before is None:
        rows.add(
            Participant,
            ticket_id=ticket_id,
            address=plan.after.requester,
            name=plan.after.requester_name,
            role="requester",
            bouncing=False,
        )
    _add_participants(rows, plan)
    _merge(rows, plan)
    for event in event_rows(ticket_id, plan.events, now):
        rows.add(Event, **event)
    if plan.keep_raw is not None:
        plan.keep_raw(rows.blob)
    _message_rows(rows, plan, blobs)
    entries, refs = outbox_rows(
        plan.queued,
        plan.after,
        envelope_from=config.tickets.support_address,
        now=now,
        relayed=(plan.message_pk, plan.msg.text),
    )
    for entry, ref in zip(entries, refs, strict=True):
        rows.add(OutboxEntry, **entry)
        rows.add(ThreadRef, **ref)
    if plan.receipt:
        source, validity, uid = plan.receipt
        rows.add(
            Receipt,
            source=source,
            uidvalidity=validity,
            uid=uid,
            dedup_key=plan.msg.dedup_key,
            outcome="stored",
            at=now,
        )


def _merge(rows: Rows, plan: Plan) -> None:
    """#merge: the target ticket gets this ticket's requester in Cc and a note of it."""
    target = plan.decision.merge_into
    if target is None:
        return
    source = plan.after
    if source.requester != target.requester and source.requester not in target.participants:
        rows.add(
            Participant,
            ticket_id=target.id,
            address=source.requester,
            name=source.requester_name,
            role="cc",
            bouncing=False,
        )
    event = TicketEvent(
        "merged", plan.decision.actor, f"{source.ref} was merged into this ticket", source.ref,
        target.ref,
    )  # fmt: skip
    for row in event_rows(target.id, [event], plan.now):
        rows.add(Event, **row)


def _add_participants(rows: Rows, plan: Plan) -> None:
    known = set(plan.before.participants) if plan.before else set()
    known.add(plan.after.requester)
    for address, role in plan.decision.participants:
        if address.address in known:
            continue
        known.add(address.address)
        rows.add(
            Participant,
            ticket_id=plan.after.id,
            address=address.address,
            name=address.name,
            role=role,
            bouncing=False,
        )


def _message_rows(rows: Rows, plan: Plan, blobs: BlobStore) -> None:
    msg, decision, message_pk = plan.msg, plan.decision, plan.message_pk
    rows.add(
        Message,
        id=message_pk,
        ticket_id=plan.after.id,
        dedup_key=msg.dedup_key,
        direction="in",
        author_kind=decision.author.value,
        kind=decision.kind.value,
        internal=decision.internal,
        message_id=msg.message_id,
        in_reply_to=" ".join(msg.in_reply_to) or None,
        references=" ".join(msg.references) or None,
        from_addr=msg.from_addr,
        from_name=msg.sender.name if msg.sender else "",
        to_addrs=[str(a) for a in msg.to],
        cc_addrs=[str(a) for a in msg.cc],
        subject=msg.subject,
        date=msg.date,
        text_body=msg.text,
        html_body=msg.html,
        raw_sha256=msg.sha256,
        raw_size=msg.size,
        source=plan.source,
        screen_reason=decision.screening.reason or None,
        commands=list(decision.commands),
        created_at=plan.now,
    )
    for att in msg.attachments:
        rows.add(
            Attachment,
            message_id=message_pk,
            filename=safe_filename(att.filename),
            content_type=att.content_type[:255],
            size=att.size,
            sha256=att.blob or blobs.put(att.data, rows.blob),  # big parts: stored while parsing
            content_id=att.content_id,
            inline=att.inline,
        )
    if plan.note_pk:
        _forward_note(rows, plan)
    if msg.message_id and plan.new_thread_ref:
        rows.add(
            ThreadRef,
            message_id=msg.message_id,
            ticket_id=plan.after.id,
            ours=False,
            # The requester sees an agent's words only as our relayed copy.
            visible=not decision.internal and decision.author is not Author.AGENT,
            created_at=plan.now,
        )


def _forward_note(rows: Rows, plan: Plan) -> None:
    """What an agent wrote above a customer's mail they forwarded: an internal note, kept
    beside the customer's mail that the forward is stored as (same raw message)."""
    forwarded, msg = plan.decision.forwarded, plan.msg
    assert forwarded is not None
    rows.add(
        Message,
        id=plan.note_pk,
        ticket_id=plan.after.id,
        dedup_key=f"{msg.dedup_key}#forward-note",
        direction="in",
        author_kind=Author.AGENT.value,
        kind="note",
        internal=True,
        message_id=None,
        from_addr=forwarded.agent.address,
        from_name=forwarded.agent.name,
        subject=msg.subject,
        text_body=forwarded.note,
        raw_sha256=msg.sha256,
        raw_size=msg.size,
        source=plan.source,
        created_at=plan.now,
    )
