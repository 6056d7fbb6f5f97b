"""Facts for assignment strategies: open tickets per agent and each queue's last assignee."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from maildesk.common.domain import Status
from maildesk.decide.batch_state import BatchState
from maildesk.store.leases import ingesting_daemons
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


def load_assignment_facts(session: Session, state: BatchState, lock: bool) -> None:
    """Read the open tickets per agent and each queue's last assignee, once per batch and
    only when a strategy has a choice to make (rules.assign.AssignmentFactsNeeded).

    With `lock` (daemon.assignment_lock), from here to its commit the batch holds the
    assignment lock (PostgreSQL), so other daemons that need the facts wait: two must
    not read the same counts and hand two tickets to one agent. Batches whose
    strategies have one agent to choose never wait.
    """
    if lock:
        lock_assignments(session)
    # Without it, N daemons on PostgreSQL read the same counts at once: if each evened
    # out a difference in full, together they would overshoot it N times (measured with
    # 4: 2,304 against 2,412 tickets), so each evens out its Nth. (SQLite's batches
    # hold the write lock from their start: their counts are always current.)
    side_by_side = not lock and session.get_bind().dialect.name == "postgresql"
    deciders = ingesting_daemons(session) if side_by_side else 1
    state.take_assignment_facts(open_counts(session), last_assigned(session), deciders)
