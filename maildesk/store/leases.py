"""Leases: one daemon at a time owns a mailbox (or a job), until its lease expires.

A lease is a row in `leases` taken with a conditional UPDATE (or an INSERT when there
is no row yet). On PostgreSQL the UPDATE locks the row, so a renewal inside an ingest
transaction fences it: a daemon whose lease was taken over cannot commit a batch. Time
comes from the database server on PostgreSQL, so daemons on machines with skewed
clocks agree on expiry.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maildesk.common.errors import LeaseLost
from maildesk.store.models import Lease


def holder_id(node: str | None = None) -> str:
    """A name for this process, unique across machines and restarts: node:pid:random."""
    return f"{node or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _dead_here(owner: str, holder: str) -> bool:
    """True when `owner` ran on our node (same node name as `holder`) and has died."""
    node, _, pid_text = owner.rpartition(":")[0].rpartition(":")
    if not pid_text.isdigit() or node != holder.rpartition(":")[0].rpartition(":")[0]:
        return False
    if int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def db_now(session: Session) -> datetime:
    """The current time, from the database server where there is one."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.now()))
        assert value is not None
        return value.astimezone(UTC)
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a lease and until when."""

    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime
    live: bool


def acquire(session: Session, name: str, holder: str, seconds: float) -> bool:
    """Take or extend the lease `name` unless another holder's lease is still live."""
    now = db_now(session)
    until = now + timedelta(seconds=seconds)
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
        .values(
            holder=holder,
            expires_at=until,
            acquired_at=case((Lease.holder == holder, Lease.acquired_at), else_=now),
        )
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    owner = session.scalar(select(Lease.holder).where(Lease.name == name))
    if owner is not None and _dead_here(owner, holder):
        # Restarted after a crash on this machine: no need to wait for the expiry.
        took = session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == owner)
            .values(holder=holder, expires_at=until, acquired_at=now)
        )
        return took.rowcount == 1  # type: ignore[attr-defined]
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=until, acquired_at=now))
    except IntegrityError:
        return False  # another daemon holds it (or inserted it a moment ago)
    return True


def renew(session: Session, name: str, holder: str, seconds: float) -> None:
    """Extend our lease; raise LeaseLost when another daemon owns it now.

    An expired lease still in our name is renewed: nobody took it in between, since
    taking it over writes the new holder.
    """
    now = db_now(session)
    done = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=now + timedelta(seconds=seconds))
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        owner = current(session, name)
        who = f"{owner.holder} holds it" if owner and owner.live else "it expired"
        raise LeaseLost(f"lease {name} lost: {who}")


def release(session: Session, name: str, holder: str) -> None:
    """Give the lease up so another daemon can take it at once."""
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def current(session: Session, name: str) -> LeaseInfo | None:
    """The lease `name` as it stands, or None."""
    return all_leases(session).get(name)


def all_leases(session: Session) -> dict[str, LeaseInfo]:
    """Every lease by name, marked live or expired."""
    now = db_now(session)
    return {
        row.name: LeaseInfo(
            row.name, row.holder, row.expires_at, row.acquired_at, row.expires_at >= now
        )
        for row in session.scalars(select(Lease))
    }
