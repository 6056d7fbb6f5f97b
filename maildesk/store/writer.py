"""Turn decided messages into rows, with one bulk INSERT per table per batch.

Ticket and message ids are handed out before writing (TicketIds, RowIds), so every
row can be built as a plain dict and inserted with SQLAlchemy's ORM bulk INSERT;
only tickets that already existed are updated through their loaded ORM objects.
"""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import Author, Status, TicketState
from maildesk.decide.inbound import Change, Decision
from maildesk.intake.filenames import safe_filename
from maildesk.intake.parse import ParsedMessage
from maildesk.store.assignment import record_assignment
from maildesk.store.blobs import BlobStore, InlineSink, insert_blobs
from maildesk.store.models import (
    Attachment,
    Base,
    Event,
    Message,
    OutboxEntry,
    Participant,
    Receipt,
    ThreadRef,
    Ticket,
)
from maildesk.store.outbox import QueuedNotice, outbox_row, ticket_thread_root
from maildesk.store.tickets import change_ticket


@dataclass
class Plan:
    """One decided message, ready to be written."""

    msg: ParsedMessage
    decision: Decision
    before: TicketState | None  # None when the message opens the ticket
    after: TicketState
    queued: list[QueuedNotice]
    contexts: list[dict[str, Any]]
    source: str
    receipt: tuple[str, int, int] | None
    now: datetime
    message_pk: int | None = field(default=None)
    new_thread_ref: bool = True  # the Message-ID is not in thread_refs yet
    # Stores the raw message, small ones through the given sink (a blobs row).
    keep_raw: Callable[[InlineSink], str] | None = field(default=None)


class RowIds:
    """Hands out primary keys before insert, so rows can refer to each other in one batch."""

    def __init__(self, session: Session, model: type[Base], table: str):
        self.session = session
        self.model = model
        self.table = table
        self._next: int | None = None
        self._postgresql = session.get_bind().dialect.name == "postgresql"

    def allocate(self) -> int:
        if self._postgresql:
            sql = text(f"SELECT nextval(pg_get_serial_sequence('{self.table}', 'id'))")
            return int(self.session.scalar(sql))
        if self._next is None:  # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE)
            self._next = (self.session.scalar(select(func.max(self.model.id))) or 0) + 1  # type: ignore[attr-defined]
        allocated, self._next = self._next, self._next + 1
        return allocated


class TicketIds(RowIds):
    def __init__(self, session: Session):
        super().__init__(session, Ticket, "tickets")


class Rows:
    """Rows to insert, per model, in an order that satisfies foreign keys."""

    ORDER = (Ticket, Participant, Message, Attachment, Event, ThreadRef, Receipt, OutboxEntry)

    def __init__(self) -> None:
        self.rows: dict[type[Base], list[dict[str, Any]]] = defaultdict(list)
        self.blobs: dict[str, bytes] = {}

    def blob(self, sha256: str, data: bytes) -> None:
        self.blobs.setdefault(sha256, data)

    def add(self, model: type[Base], **values: Any) -> dict[str, Any]:
        self.rows[model].append(values)
        return values

    def insert(self, session: Session) -> None:
        insert_blobs(session, self.blobs)
        for model in self.ORDER:
            rows = self.rows.get(model)
            if rows:
                for group in _same_keys(rows):
                    bulk_insert(session, model.__table__, group)  # type: ignore[arg-type]


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows that share one column set. On SQLite this is one DB-API executemany of
    pre-converted tuples: SQLAlchemy's per-row parameter handling cost more than SQLite's
    own work. Elsewhere SQLAlchemy's multi-row INSERT is the fast way already."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "sqlite":
        session.execute(table.insert(), rows)
        return
    keys = tuple(rows[0])
    sql, converters = _insert_sql(dialect, table, keys)
    take = operator.itemgetter(*keys)
    params: list[Any] = (
        [take(row) for row in rows] if len(keys) > 1 else [(row[keys[0]],) for row in rows]
    )
    if converters:
        params = [list(values) for values in params]
        # Most values repeat within a batch (its timestamp, None, flags): convert each once.
        seen: dict[tuple[int, Any], Any] = {}
        for i, convert in converters:
            for values in params:
                value = values[i]
                if isinstance(value, datetime | bool | None):
                    key = (i, value)
                    if key not in seen:
                        seen[key] = convert(value)
                    values[i] = seen[key]
                else:
                    values[i] = convert(value)
        params = [tuple(values) for values in params]
    connection.exec_driver_sql(sql, params)


@functools.cache
def _insert_sql(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[str, list[tuple[int, Callable[[Any], Any]]]]:
    """The INSERT statement (qmark style) and the columns whose values need converting."""
    quote = dialect.identifier_preparer
    columns = [table.c[key] for key in keys]
    names = ", ".join(quote.format_column(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {quote.format_table(table)} ({names}) VALUES ({marks})"
    converters = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    return sql, [(i, convert) for i, convert in enumerate(converters) if convert is not None]


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows split into runs with the same columns (executemany needs one column set)."""
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):
        return [rows]
    groups: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[frozenset(row)].append(row)
    return list(groups.values())


def write_plans(session: Session, plans: list[Plan], config: Config, blobs: BlobStore) -> None:
    """Insert every row for `plans` and update the tickets they change."""
    rows = Rows()
    new_tickets: dict[int, dict[str, Any]] = {}
    existing = _load_tickets(session, {p.after.id for p in plans if p.before is not None})
    loaded = {ticket_id: dict(values) for ticket_id, values in existing.items()}
    for plan in plans:
        if plan.before is None:
            new_tickets[plan.after.id] = _new_ticket(rows, plan)
        ticket = new_tickets.get(plan.after.id) or existing.get(plan.after.id)
        if ticket is None:
            raise LookupError(f"ticket {plan.after.ref} vanished while processing")
        assert plan.message_pk is not None, "the pipeline hands out message ids"
        _write_plan(rows, ticket, plan, config, blobs, plan.message_pk)
    rows.insert(session)
    _update_tickets(session, existing, loaded)
    last_assigned: dict[str, str] = {}  # queue -> the batch's last agent given one by strategy
    for plan in plans:
        new = plan.decision.new_ticket
        if new is not None and new.assign_strategy and new.assignee:
            last_assigned[new.queue] = new.assignee
    for queue, agent in last_assigned.items():
        record_assignment(session, queue, agent)
    session.flush()


def _load_tickets(session: Session, ids: set[int]) -> dict[int, dict[str, Any]]:
    """The batch's existing tickets as plain rows to change, in one query."""
    if not ids:
        return {}
    table = Ticket.__table__
    found = session.execute(select(table).where(table.c.id.in_(ids)))
    return {row.id: dict(row._mapping) for row in found}


def _update_tickets(
    session: Session, changed: dict[int, dict[str, Any]], loaded: dict[int, dict[str, Any]]
) -> None:
    """One UPDATE per set of changed columns, for every ticket whose row changed."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for ticket_id, values in changed.items():
        before = loaded[ticket_id]
        diff = {k: v for k, v in values.items() if before.get(k) != v}
        if diff:
            groups[tuple(sorted(diff))].append({"ticket_id": ticket_id, **diff})
    table = Ticket.__table__
    for rows in groups.values():  # the SET clause is made from the keys of the rows
        session.execute(update(table).where(table.c.id == bindparam("ticket_id")), rows)


def add_receipt(
    session: Session, receipt: tuple[str, int, int], key: str | None, outcome: str, now: datetime
) -> None:
    source, validity, uid = receipt
    session.add(
        Receipt(
            source=source, uidvalidity=validity, uid=uid, dedup_key=key, outcome=outcome, at=now
        )
    )


def _new_ticket(rows: Rows, plan: Plan) -> dict[str, Any]:
    new, state = plan.decision.new_ticket, plan.after
    assert new is not None
    ticket = rows.add(
        Ticket,
        id=state.id,
        ref=state.ref,
        subject=new.subject[:2000],
        status=Status.NEW.value,
        priority=new.priority.value,
        queue=new.queue,
        assignee=new.assignee,
        requester=new.requester.address,
        requester_name=new.requester.name,
        language=new.language,
        tags=list(dict.fromkeys(new.tags)),
        rules_fired=list(plan.decision.rule_hits),
        message_id=state.message_id,
        thread_index=new.thread_index,
        created_at=plan.now,
        updated_at=plan.now,
        first_response_at=None,
        resolved_at=None,
        closed_at=None,
        last_customer_at=None,
        last_agent_at=None,
        sla_policy=new.sla_policy,
        first_response_due=state.first_response_due,
        resolution_due=state.resolution_due,
        sla_state={},
        reopen_count=0,
        spam=new.spam,
        merged_into_id=None,
        linked_from_id=new.linked_from,
    )
    rows.add(
        Participant,
        ticket_id=state.id,
        address=new.requester.address,
        name=new.requester.name,
        role="requester",
        bouncing=False,
    )
    hits = f"; rules: {', '.join(plan.decision.rule_hits)}" if plan.decision.rule_hits else ""
    _event(
        rows,
        state.id,
        plan.now,
        plan.decision.actor,
        "created",
        None,
        state.ref,
        f"new request in queue {new.queue}, priority {new.priority.value}{hits}",
    )
    if new.assignee:
        _event(
            rows,
            state.id,
            plan.now,
            "rules",
            "assignee",
            None,
            new.assignee,
            f"assigned by rules{hits}",
        )
    return ticket


def _event(
    rows: Rows,
    ticket_id: int,
    at: datetime,
    actor: str,
    kind: str,
    old: str | None,
    new: str | None,
    reason: str,
) -> None:
    rows.add(
        Event, ticket_id=ticket_id, at=at, actor=actor, kind=kind, old=old, new=new, reason=reason
    )


def _write_plan(
    rows: Rows,
    ticket: dict[str, Any],
    plan: Plan,
    config: Config,
    blobs: BlobStore,
    message_pk: int,
) -> None:
    decision, now, ticket_id = plan.decision, plan.now, plan.after.id
    for change in decision.changes:
        logged = change_ticket(ticket, change, now)
        if logged is not None:
            _event(rows, ticket_id, now, decision.actor, change.field, *logged, change.reason)
    if plan.before is not None and decision.rule_hits:
        fired = list(ticket.get("rules_fired") or [])
        ticket["rules_fired"] = list(dict.fromkeys([*fired, *decision.rule_hits]))
        _event(
            rows,
            ticket_id,
            now,
            "rules",
            "rules",
            None,
            None,
            f"rules fired on a follow-up: {', '.join(decision.rule_hits)}",
        )
    _add_participants(rows, plan)
    _merge(rows, plan)
    for kind, reason in decision.notes:
        _event(rows, ticket_id, now, decision.actor, kind, None, None, reason)
    plan.message_pk = message_pk
    if plan.keep_raw is not None:
        plan.keep_raw(rows.blob)
    _message_rows(rows, plan, blobs, message_pk)
    root = ticket_thread_root(plan.after.thread_index, plan.after.created_at, plan.after.message_id)
    for queued, context in zip(plan.queued, plan.contexts, strict=True):
        entry, ref = outbox_row(
            config,
            ticket_id=ticket_id,
            language=plan.after.language,
            queued=queued,
            context=context,
            now=now,
            thread_root=root,
        )
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
    _touch(ticket, decision, now)


def _touch(ticket: dict[str, Any], decision: Decision, now: datetime) -> None:
    ticket["updated_at"] = now
    if decision.author.value in ("requester", "participant") and not decision.internal:
        ticket["last_customer_at"] = now
    elif decision.author.value == "agent":
        ticket["last_agent_at"] = now


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
    _event(
        rows,
        target.id,
        plan.now,
        plan.decision.actor,
        "merged",
        source.ref,
        target.ref,
        f"{source.ref} was merged into this ticket",
    )


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


def _message_rows(rows: Rows, plan: Plan, blobs: BlobStore, message_pk: int) -> None:
    msg, decision = plan.msg, plan.decision
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


__all__ = ["Change", "Plan", "TicketIds", "add_receipt", "write_plans"]
