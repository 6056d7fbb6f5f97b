"""Load, in a handful of queries, everything a batch needs to decide its messages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, func, or_, select
from sqlalchemy.orm import Session

from maildesk.common.domain import CONVERSATION_AUTHORS, TicketState
from maildesk.decide.batch_state import BatchState
from maildesk.intake.message import ParsedMessage
from maildesk.store.models import Message, OutboxEntry, Participant, Receipt, ThreadRef, Ticket
from maildesk.store.outbox import auto_reply_counts, one_hour_before
from maildesk.store.pg_bulk import among
from maildesk.store.ticket_rows import state_from_row
from maildesk.triage.thread_keys import ThreadKeys, format_token

_CHUNK = 500  # bound the size of IN (...) lists
# An auto-reply that names no ticket belongs to what we last sent its sender this recently.
AUTO_REPLY_WINDOW = timedelta(days=7)


def load_batch_state(
    session: Session,
    messages: Sequence[tuple[ParsedMessage, ThreadKeys]],
    receipts: Iterable[tuple[str, int, int]],
    *,
    prefix: str,
    now: datetime,
    auto_repliers: Sequence[str] = (),
    extra_refs: set[str] | None = None,
) -> BatchState:
    """Tickets the messages may thread into, duplicates, receipts and auto-reply counts.

    `auto_repliers` are senders of auto-replies: the ticket each was last notified about
    is loaded too, for out-of-office replies that quote nothing.
    """
    state = BatchState(prefix=prefix)
    state.stored = _stored(session, [m.dedup_key for m, _ in messages])
    state.receipts = _received(session, list(receipts))
    # Their own Message-IDs too: a message we already know (our own mail coming back)
    # must not be recorded a second time.
    own_ids = {m.message_id for m, _ in messages if m.message_id}
    reference_ids = list({i for _, k in messages for i in k.reference_ids} | own_ids)
    state.thread_refs, state.our_ids = _thread_refs(session, reference_ids)
    state.audiences = _audiences(session, [i for i in state.thread_refs if i not in state.our_ids])
    state.last_notified = _last_notified(session, list(auto_repliers), now - AUTO_REPLY_WINDOW)
    refs = {format_token(prefix, n).upper() for _, k in messages for n in k.ticket_numbers}
    refs |= extra_refs or set()
    ids = set(state.thread_refs.values()) | set(state.last_notified.values())
    for ticket in _tickets(session, ids, refs):
        state.add_ticket(ticket)
    senders = [m.from_addr for m, _ in messages if m.from_addr]
    state.auto_replies = auto_reply_counts(session, senders, one_hour_before(now))
    return state


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _stored(session: Session, keys: list[str]) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for chunk in _chunks(list(set(keys))):
        query = (
            select(Message.dedup_key, Ticket.ref, Message.id)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(among(session, Message.dedup_key, chunk))
        )
        found.update({key: (ref, pk) for key, ref, pk in session.execute(query)})
    return found


def _received(session: Session, receipts: list[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for source, validity, uid in receipts:
        groups[(source, validity)].append(uid)
    found = set()
    for (source, validity), uids in groups.items():
        for chunk in _chunks(uids):
            query = select(Receipt.uid).where(
                Receipt.source == source,
                Receipt.uidvalidity == validity,
                among(session, Receipt.uid, chunk),
            )
            found.update((source, validity, uid) for uid in session.scalars(query))
    return found


def _thread_refs(session: Session, message_ids: list[str]) -> tuple[dict[str, int], set[str]]:
    """Message-ID -> ticket id, and which of those Message-IDs we made ourselves."""
    found: dict[str, int] = {}
    ours: set[str] = set()
    for chunk in _chunks(message_ids):
        query = select(ThreadRef.message_id, ThreadRef.ticket_id, ThreadRef.ours).where(
            among(session, ThreadRef.message_id, chunk)
        )
        for message_id, ticket_id, is_ours in session.execute(query):
            found[message_id] = ticket_id
            if is_ours:
                ours.add(message_id)
    return found, ours


def _audiences(session: Session, message_ids: list[str]) -> dict[str, frozenset[str]]:
    """Who wrote and received each stored message of a ticket's conversation (see
    CONVERSATION_AUTHORS): From, To and Cc addresses."""
    found: dict[str, frozenset[str]] = {}
    authors = sorted(a.value for a in CONVERSATION_AUTHORS)
    for chunk in _chunks(message_ids):
        query = select(
            Message.message_id, Message.from_addr, Message.to_addrs, Message.cc_addrs
        ).where(Message.message_id.in_(chunk), Message.author_kind.in_(authors))
        for message_id, sender, to, cc in session.execute(query):
            people = {sender, *(_address(a) for a in [*(to or []), *(cc or [])])}
            found[message_id] = frozenset(p for p in people if p)
    return found


def _address(shown: str) -> str:
    """The address in `Name <addr>` (as messages.to_addrs keeps them) or a bare address."""
    inside = shown.rpartition("<")[2].rstrip(">") if "<" in shown else shown
    return inside.strip().lower()


def _last_notified(session: Session, addresses: list[str], since: datetime) -> dict[str, int]:
    """address -> the ticket we last sent it a notification about (since `since`)."""
    found: dict[str, int] = {}
    for chunk in _chunks(list(set(addresses))):
        query = (
            select(OutboxEntry.to_addr, OutboxEntry.ticket_id)
            .where(
                among(session, OutboxEntry.to_addr, chunk),
                OutboxEntry.created_at >= since,
                OutboxEntry.ticket_id.is_not(None),
            )
            .order_by(OutboxEntry.id)
        )
        found.update({address: ticket_id for address, ticket_id in session.execute(query)})
    return found


def _tickets(session: Session, ids: set[int], refs: set[str]) -> list[TicketState]:
    """Tickets by id or ref, plus the tickets they were merged into, as snapshots.

    Read as plain rows, not ORM objects: the writer updates them with plain UPDATEs.
    """
    table = Ticket.__table__
    loaded: dict[int, Row[Any]] = {}
    wanted_ids, wanted_refs = set(ids), set(refs)
    while wanted_ids or wanted_refs:
        conditions = []
        if wanted_ids:
            conditions.append(among(session, table.c.id, wanted_ids))
        if wanted_refs:
            upper_ref = func.upper(table.c.ref, type_=table.c.ref.type)
            conditions.append(among(session, upper_ref, wanted_refs))
        query = select(table).where(or_(*conditions))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # two daemons never change one ticket at once
        new = {t.id: t for t in session.execute(query) if t.id not in loaded}
        loaded.update(new)
        wanted_ids = {t.merged_into_id for t in new.values() if t.merged_into_id} - set(loaded)
        wanted_refs = set()
    people = _participants(session, list(loaded))
    threads = _visible_threads(session, list(loaded))
    agent_threads = _agent_threads(session, list(loaded))
    refs_by_id = {t.id: t.ref for t in loaded.values()}
    return [
        snapshot(
            t,
            people.get(t.id, []),
            threads.get(t.id, ()),
            refs_by_id,
            agent_threads.get(t.id, {}),
        )
        for t in loaded.values()
    ]


def _participants(session: Session, ticket_ids: list[int]) -> dict[int, list[Row[Any]]]:
    found: dict[int, list[Row[Any]]] = defaultdict(list)
    for chunk in _chunks(ticket_ids):
        query = select(
            Participant.ticket_id, Participant.address, Participant.role, Participant.bouncing
        ).where(among(session, Participant.ticket_id, chunk))
        for row in session.execute(query):
            found[row.ticket_id].append(row)
    return found


def _visible_threads(session: Session, ticket_ids: list[int]) -> dict[int, tuple[str, ...]]:
    threads: dict[int, list[str]] = defaultdict(list)
    for chunk in _chunks(ticket_ids):
        query = (
            select(ThreadRef.ticket_id, ThreadRef.message_id)
            .where(among(session, ThreadRef.ticket_id, chunk), ThreadRef.visible.is_(True))
            .order_by(ThreadRef.id)
        )
        for ticket_id, message_id in session.execute(query):
            threads[ticket_id].append(message_id)
    return {k: tuple(v) for k, v in threads.items()}


def _agent_threads(
    session: Session, ticket_ids: list[int]
) -> dict[int, dict[str, tuple[str, ...]]]:
    """Per ticket and agent: what we sent them and what they wrote, in thread order."""
    found: dict[int, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for chunk in _chunks(ticket_ids):
        sent = (
            select(OutboxEntry.ticket_id, OutboxEntry.to_addr, ThreadRef.message_id, ThreadRef.id)
            .join(ThreadRef, ThreadRef.message_id == OutboxEntry.message_id)
            .where(among(session, OutboxEntry.ticket_id, chunk), OutboxEntry.audience == "agents")
        )
        written = (
            select(Message.ticket_id, Message.from_addr, ThreadRef.message_id, ThreadRef.id)
            .join(ThreadRef, ThreadRef.message_id == Message.message_id)
            .where(among(session, Message.ticket_id, chunk), Message.author_kind == "agent")
        )
        for query in (sent, written):
            for ticket_id, address, message_id, order in session.execute(query):
                found[ticket_id][address].append((order, message_id))
    return {
        ticket_id: {a: tuple(m for _, m in sorted(items)) for a, items in agents.items()}
        for ticket_id, agents in found.items()
    }


class _Person(Protocol):
    address: str
    role: str
    bouncing: bool


def snapshot(
    ticket: Any,
    participants: Iterable[_Person],
    thread_ids: tuple[str, ...],
    refs_by_id: dict[int, str],
    agent_threads: dict[str, tuple[str, ...]] | None = None,
) -> TicketState:
    """The read-only view of a stored ticket (an ORM object or a row) that deciding gets."""
    people = list(participants)
    merged = ticket.merged_into_id
    return state_from_row(
        ticket,
        merged_into=refs_by_id.get(merged) if merged else None,
        participants={p.address: p.role for p in people if p.role != "requester"},
        thread_ids=thread_ids,
        bouncing=tuple(p.address for p in people if p.bouncing),
        agent_threads=agent_threads or {},
    )


def load_ticket_state(session: Session, ticket_id: int) -> TicketState:
    """The snapshot of one ticket with its readers' threads (outside batch ingest)."""
    states = _tickets(session, {ticket_id}, set())
    found = next((s for s in states if s.id == ticket_id), None)
    if found is None:
        raise LookupError(f"ticket {ticket_id} does not exist")
    return found
