"""Full-text search over tickets: one interface, SQLite FTS5 and PostgreSQL behind it.

Each stored message is one document in the `search_index` table: its ticket's ref,
subject, addresses and names, attachment names and text. The writer adds it in the
transaction that stores the message. A ticket matches when each word or phrase of
the query is found in one of its messages (not necessarily the same one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from maildesk.common.search_query import SearchHit, SearchTerm, parse_query
from maildesk.store.models import Message, Ticket
from maildesk.store.search_terms import TermMatcher, snippet

if TYPE_CHECKING:  # `maildesk search` reads the index without the intake stage
    from maildesk.intake.message import ParsedMessage

SEARCH_TABLE = "search_index"
SNIPPET_SOURCE_CHARS = 100_000  # as much of a body as is indexed


class SearchBackend(Protocol):
    """What a database must do for search: index messages, find those matching a term."""

    def index(self, session: Session, messages: Sequence[tuple[int, str, ParsedMessage]]) -> None:
        """Index stored messages (message id, ticket ref, message) in the caller's transaction."""

    def matching(self, term: SearchTerm) -> Select[Any]:
        """A query for the ids of the messages whose document contains `term`."""


@dataclass(frozen=True)
class SearchFilters:
    """What narrows a search besides its words; `until` is exclusive."""

    statuses: tuple[str, ...] = ()
    queue: str | None = None
    assignee: str | None = None  # an address, or "none" for unassigned tickets
    requester: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    limit: int = 20


def backend_for(session: Session) -> SearchBackend:
    """The search implementation of the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        from maildesk.store.search_postgres import PostgresSearch

        return PostgresSearch()
    from maildesk.store.search_sqlite import Fts5Search

    return Fts5Search()


def index_messages(session: Session, messages: Sequence[tuple[int, str, ParsedMessage]]) -> None:
    """Index stored messages: (message id, its ticket's ref, the message)."""
    if messages:
        backend_for(session).index(session, messages)


def search_tickets(
    session: Session, query: str | list[SearchTerm], filters: SearchFilters | None = None
) -> list[SearchHit]:
    """Tickets matching every term of `query`, most recently updated first.

    Raises QueryError (common.search_query) when the query has nothing to search for.
    """
    terms = parse_query(query) if isinstance(query, str) else query
    filters = filters or SearchFilters()
    backend = backend_for(session)
    statement = select(Ticket)
    for term in terms:
        by_message = select(Message.ticket_id).where(Message.id.in_(backend.matching(term)))
        statement = statement.where(Ticket.id.in_(by_message))
    statement = _filtered(statement, filters)
    statement = statement.order_by(Ticket.updated_at.desc(), Ticket.id.desc()).limit(filters.limit)
    tickets = list(session.scalars(statement))
    texts = _matching_texts(session, backend, terms, [t.id for t in tickets])
    matcher = TermMatcher(terms)
    return [_hit(t, snippet(texts.get(t.id, ""), matcher)) for t in tickets]


def _filtered(statement: Select[Any], filters: SearchFilters) -> Select[Any]:
    if filters.statuses:
        statement = statement.where(Ticket.status.in_(filters.statuses))
    if filters.queue:
        statement = statement.where(Ticket.queue == filters.queue)
    if filters.assignee and filters.assignee.lower() == "none":
        statement = statement.where(Ticket.assignee.is_(None))
    elif filters.assignee:
        statement = statement.where(Ticket.assignee == filters.assignee.lower())
    if filters.requester:
        statement = statement.where(Ticket.requester == filters.requester.lower())
    if filters.since:
        statement = statement.where(Ticket.created_at >= filters.since)
    if filters.until:
        statement = statement.where(Ticket.created_at < filters.until)
    return statement


def _matching_texts(
    session: Session, backend: SearchBackend, terms: list[SearchTerm], ticket_ids: list[int]
) -> dict[int, str]:
    """Per ticket, the text of its first message that holds any of the terms."""
    if not ticket_ids:
        return {}
    rows = session.execute(
        select(Message.ticket_id, func.substr(Message.text_body, 1, SNIPPET_SOURCE_CHARS))
        .where(Message.ticket_id.in_(ticket_ids))
        .where(or_(*(Message.id.in_(backend.matching(term)) for term in terms)))
        .order_by(Message.id)
    )
    texts: dict[int, str] = {}
    for ticket_id, text in rows:
        texts.setdefault(ticket_id, text or "")
    return texts


def _hit(ticket: Ticket, text: str) -> SearchHit:
    return SearchHit(
        ref=ticket.ref,
        subject=ticket.subject,
        status=ticket.status,
        queue=ticket.queue,
        assignee=ticket.assignee,
        requester=ticket.requester,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        snippet=text,
    )


def described_by_models(name: str | None, type_: str, _parents: Any = None) -> bool:
    """False for the search index's tables, which the models leave out (FTS5's virtual
    table and its shadow tables are no SQLAlchemy tables); Alembic's `include_name`."""
    return not (type_ == "table" and (name or "").startswith(SEARCH_TABLE))
