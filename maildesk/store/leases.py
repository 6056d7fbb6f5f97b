"""Leases: one daemon at a time owns a mailbox (or a job), until its lease expires.

A lease is a row in `leases` taken with a conditional UPDATE (or an INSERT when there
is no row yet). Each acquisition by a new holder increments the row's fencing token;
renewals inside an ingest transaction check holder and token (on PostgreSQL the UPDATE
locks the row), so a daemon whose lease was taken over cannot commit a batch, even one
that took the same lease again later. Rows are kept on release, so tokens only grow.

A lease whose holder's daemon heartbeat (`daemon:<holder>`, see service/balancer.py)
has expired is free at once, without waiting for its own expiry. Time comes from the
database server on PostgreSQL, so daemons on machines with skewed clocks agree.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from maildesk.common.errors import LeaseLost
from maildesk.store.models import Lease

HEARTBEAT = "daemon:"  # a daemon's heartbeat lease is named HEARTBEAT + its holder id


def holder_id(node: str | None = None) -> str:
    """A name for this process, unique across machines and restarts: node:pid:random."""
    return f"{node or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def dead_here(owner: str, holder: str) -> bool:
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
    """Who holds a lease, until when, and its fencing token."""

    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime
    live: bool
    token: int = 0


def beat(session: Session, holder: str, seconds: float, mailboxes: int) -> None:
    """Renew (or start) this daemon's heartbeat; a heartbeat's `token` holds how many
    mailboxes the daemon serves (0: it only sends, and takes no share of mailboxes)."""
    now = db_now(session)
    values = {"holder": holder, "expires_at": now + timedelta(seconds=seconds), "token": mailboxes}
    done = session.execute(
        update(Lease)
        .where(Lease.name == HEARTBEAT + holder)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 0:  # type: ignore[attr-defined]
        session.add(Lease(name=HEARTBEAT + holder, acquired_at=now, **values))


def ingesting_daemons(session: Session) -> int:
    """How many daemons with a live heartbeat ingest mailboxes (at least 1: the caller)."""
    live = select(func.count()).where(
        Lease.name.startswith(HEARTBEAT), Lease.expires_at >= db_now(session), Lease.token > 0
    )
    return max(1, session.scalar(live) or 0)


def heartbeat_gone(holder: Any, now: datetime) -> ColumnElement[bool]:
    """SQL: `holder` (a column or expression) is a daemon whose heartbeat has expired."""
    beat = aliased(Lease)
    return exists().where(beat.name == literal(HEARTBEAT) + holder, beat.expires_at < now)


def acquire(session: Session, name: str, holder: str, seconds: float) -> int | None:
    """Take or extend the lease `name` unless another live holder has it.

    Returns the fencing token (1 or more) to pass to `renew`, or None when not taken.
    """
    now = db_now(session)
    until = now + timedelta(seconds=seconds)
    ours = Lease.holder == holder
    free = or_(ours, Lease.holder == "", Lease.expires_at < now, heartbeat_gone(Lease.holder, now))
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, free)
        .values(
            holder=holder,
            expires_at=until,
            acquired_at=case((ours, Lease.acquired_at), else_=now),
            token=case((ours, Lease.token), else_=Lease.token + 1),
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return _token(session, name)
    owner = session.scalar(select(Lease.holder).where(Lease.name == name))
    if owner is not None and dead_here(owner, holder):
        # Restarted after a crash on this machine: no need to wait for the expiry.
        took = session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == owner)
            .values(holder=holder, expires_at=until, acquired_at=now, token=Lease.token + 1)
            .execution_options(synchronize_session=False)
        )
        return _token(session, name) if took.rowcount == 1 else None  # type: ignore[attr-defined]
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=until, acquired_at=now, token=1))
    except IntegrityError:
        return None  # another daemon holds it (or inserted it a moment ago)
    return 1


def _token(session: Session, name: str) -> int:
    token = session.scalar(select(Lease.token).where(Lease.name == name))
    assert token is not None
    return token


def renew(
    session: Session, name: str, holder: str, seconds: float, token: int | None = None
) -> None:
    """Extend our lease; raise LeaseLost when another daemon owns it now.

    With `token`, the lease must still be the one taken with that token: taking it
    again (after losing it) does not revive an older holding. An expired lease still
    in our name is renewed: nobody took it in between, since taking it over writes
    the new holder and token.
    """
    now = db_now(session)
    mine = [Lease.name == name, Lease.holder == holder]
    if token is not None:
        mine.append(Lease.token == token)
    done = session.execute(
        update(Lease)
        .where(*mine)
        .values(expires_at=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        owner = current(session, name)
        if owner and owner.live and owner.holder != holder:
            who = f"{owner.holder} holds it"
        elif owner and owner.live:
            who = f"taken again since (token {owner.token}, ours was {token})"
        else:
            who = "it was released or expired"
        raise LeaseLost(f"lease {name} lost: {who}")


def release(session: Session, name: str, holder: str, token: int | None = None) -> None:
    """Give the lease up so another daemon can take it at once (the row and token stay)."""
    mine = [Lease.name == name, Lease.holder == holder]
    if token is not None:
        mine.append(Lease.token == token)
    session.execute(
        update(Lease)
        .where(*mine)
        .values(holder="", expires_at=db_now(session))
        .execution_options(synchronize_session=False)
    )


def forget(session: Session, name: str, holder: str) -> None:
    """Delete our lease row (a heartbeat at shutdown: nothing is fenced by it)."""
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def sweep(session: Session, prefix: str, older_than: timedelta) -> int:
    """Delete leases named `prefix`... that expired longer than `older_than` ago."""
    done = session.execute(
        delete(Lease).where(
            Lease.name.startswith(prefix, autoescape=True),
            Lease.expires_at < db_now(session) - older_than,
        )
    )
    return done.rowcount  # type: ignore[attr-defined,no-any-return]


def current(session: Session, name: str) -> LeaseInfo | None:
    """The lease `name` as it stands, or None."""
    row = session.get(Lease, name, populate_existing=True)
    if row is None:
        return None
    now = db_now(session)
    beat = session.get(Lease, HEARTBEAT + row.holder) if row.holder else None
    return _info(row, now, beat is None or beat.expires_at >= now)


def all_leases(session: Session) -> dict[str, LeaseInfo]:
    """Every lease by name, marked live (held, not expired, its daemon alive) or not."""
    now = db_now(session)
    rows = list(session.scalars(select(Lease)))
    dead = {r.name[len(HEARTBEAT) :] for r in rows if r.name.startswith(HEARTBEAT)}
    dead -= {r.name[len(HEARTBEAT) :] for r in rows if _info(r, now, True).live}
    return {row.name: _info(row, now, row.holder not in dead) for row in rows}


def heartbeats(session: Session) -> list[LeaseInfo]:
    """Every daemon's heartbeat (live or lapsed, until swept), oldest daemon first."""
    beats = [info for name, info in all_leases(session).items() if name.startswith(HEARTBEAT)]
    return sorted(beats, key=lambda info: (info.acquired_at, info.holder))


def _info(row: Lease, now: datetime, daemon_alive: bool) -> LeaseInfo:
    live = row.holder != "" and row.expires_at >= now and daemon_alive
    return LeaseInfo(row.name, row.holder, row.expires_at, row.acquired_at, live, row.token)
