"""Facts for assignment strategies: open tickets per agent and each queue's last assignee."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from maildesk.common.domain import Status
from maildesk.store.models import AssignmentState, Ticket

# Tickets that still need work from their assignee count towards least_open.
UNRESOLVED = (Status.NEW.value, Status.OPEN.value, Status.PENDING.value)
_ASSIGNMENT_LOCK = 0x6D64_A551  # a PostgreSQL advisory lock key of our own ("md assign")
# With a queue's hashtext, the two-key advisory lock that a batch moving the queue's
# round-robin pointer holds (two-key locks are a key space apart from one-key ones).
_POINTER_LOCKS = 0x6D64_7274  # "mdrt"


def lock_assignments(session: Session) -> None:
    """Make daemons take turns at assigning until this transaction ends (PostgreSQL).

    Otherwise two daemons could read the same round-robin pointer and open counts and
    hand two tickets to one agent. SQLite already serialises writing transactions.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ASSIGNMENT_LOCK})


def open_counts(session: Session) -> dict[str, int]:
    """Unresolved, non-spam tickets per assignee address."""
    rows = session.execute(
        select(Ticket.assignee, func.count(Ticket.id))
        .where(
            Ticket.assignee.is_not(None),
            Ticket.status.in_(UNRESOLVED),
            Ticket.spam.is_(False),
            Ticket.merged_into_id.is_(None),
        )
        .group_by(Ticket.assignee)
    ).all()
    return {assignee: count for assignee, count in rows}


def last_assigned(session: Session) -> dict[str, str]:
    """queue -> the agent address that got the queue's previous ticket by strategy."""
    query = select(AssignmentState.queue, AssignmentState.last_agent)
    return {queue: agent for queue, agent in session.execute(query).all() if agent}


def record_assignment(session: Session, queue: str, agent: str) -> None:
    """Move `queue`'s round-robin pointer to `agent`, in the caller's transaction.

    On PostgreSQL not while another daemon's batch is moving it (possible with
    daemon.assignment_lock: false): that batch moves the turn itself, and waiting for
    its commit would make the daemons take turns after all.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        mine = session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:space, hashtext(:queue))"),
            {"space": _POINTER_LOCKS, "queue": queue},
        )
        if not mine:
            return
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(AssignmentState).values(queue=queue, last_agent=agent)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[AssignmentState.queue], set_={"last_agent": agent}
        )
    )
