"""The outbox as a work queue: find what is due, claim it for a lease, record each try.

Several daemons share one outbox. Claims are short transactions (on PostgreSQL with
`FOR UPDATE SKIP LOCKED`; on SQLite the write lock serialises them); a claimed row is
rendered outside any transaction and its bytes kept in another short one, so the
write lock is never held while a template runs. A row is marked sent only after the
server accepted it, and only under the claim it was sent with (`claimed_by` fences it).

A daemon's sender claims under its daemon's holder id: rows claimed by a daemon whose
heartbeat has expired (it died) are claimable at once; other claims when their lease
(`claimed_until`, renewed during long batches) runs out.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, func, null, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from maildesk.common.redact import redact
from maildesk.store import leases
from maildesk.store.db import make_read_sessionmaker
from maildesk.store.models import Message, OutboxEntry

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Job:
    """One claimed notification: everything needed to send it without the database."""

    id: int
    message_id: str
    envelope_from: str
    recipients: list[str]
    raw: bytes | None  # None: a big message, read just before it is sent (`raw_of`)
    attempts: int
    ticket_id: int | None = None  # a ticket's notifications are sent in order (one lane)


@dataclass(frozen=True)
class Mark:
    """What to write to one outbox row after trying to send it."""

    entry_id: int
    values: dict[str, Any]
    delivered: bool = False  # the server took it for at least one recipient


# A plain successful send (attempts and sent_at are filled in when written).
SENT: dict[str, Any] = {
    "status": "sent",
    "claimed_by": None,
    "claimed_until": None,
    "last_error": None,
}

# Rendered bytes over this size (messages with files) are not read with the batch but
# one at a time just before sending, so a batch never holds many big messages at once.
KEEP_RAW_BYTES = 1024 * 1024

# What claiming reads of a row: enough to render it (see render_jobs.RenderJob) and send it.
# `raw` is NULL for a big message (`raw_size` then says it was rendered).
CLAIMED = (
    OutboxEntry.id,
    OutboxEntry.message_id,
    OutboxEntry.envelope_from,
    OutboxEntry.recipients,
    case((func.length(OutboxEntry.raw) > KEEP_RAW_BYTES, null()), else_=OutboxEntry.raw).label(
        "raw"
    ),
    func.length(OutboxEntry.raw).label("raw_size"),
    OutboxEntry.attempts,
    OutboxEntry.ticket_id,
    OutboxEntry.to_addr,
    OutboxEntry.template,
    OutboxEntry.language,
    OutboxEntry.context,
    OutboxEntry.headers,
    OutboxEntry.created_at,
    OutboxEntry.automatic,
    Message.text_body.label("stored_body"),  # a relayed message's text (models.OutboxEntry)
)


class OutboxQueue:
    """Due notifications, claimed by one worker at a time; each method one transaction."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock,
        worker_id: str,
        batch_size: int = 50,
        lease: timedelta = timedelta(seconds=120),
    ):
        self.sessions = sessions
        self.clock = clock
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.lease = lease
        engine = sessions.kw.get("bind")
        # Reads that need no lock (what is due) never wait for SQLite's write lock.
        self.readers = make_read_sessionmaker(engine) if engine is not None else sessions

    def store_rendered(
        self, done: Sequence[dict[str, Any]], failed: Sequence[dict[str, Any]]
    ) -> None:
        """Keep rendered bytes (retries resend them) and fail rows that cannot be rendered.

        `done` holds {id, raw, subject}, `failed` {id, attempts, last_error}. A row
        rendered before (by a sender that died before sending it) keeps its bytes.
        """
        table = OutboxEntry.__table__
        unrendered = (table.c.id == bindparam("row_id"), table.c.raw.is_(None))
        with self.sessions() as session, session.begin():
            if done:  # one executemany
                session.execute(
                    update(table)
                    .where(*unrendered)
                    .values(raw=bindparam("row_raw"), subject=bindparam("row_subject")),
                    [
                        {"row_id": d["id"], "row_raw": d["raw"], "row_subject": d["subject"]}
                        for d in done
                    ],
                )
            if failed:
                session.execute(
                    update(table)
                    .where(*unrendered)
                    .values(
                        status="failed",
                        claimed_by=None,
                        claimed_until=None,
                        attempts=bindparam("row_attempts"),
                        last_error=bindparam("row_error"),
                    ),
                    [
                        {
                            "row_id": f["id"],
                            "row_attempts": f["attempts"],
                            "row_error": f["last_error"],
                        }
                        for f in failed
                    ],
                )

    def claim(self) -> tuple[str, list[Row[Any]]]:
        """Claim due rows for this worker's lease: (claim token, rows in order).

        A row's `raw` is None until it is rendered: render it (outside any transaction)
        and keep the bytes with `store_rendered` before sending it.
        """
        now = self.clock()
        token = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        with self.sessions() as session, session.begin():
            ids = self._due_ids(session, now)
            if not ids:
                return token, []
            mark, read = _claim_statements()
            params = {"ids": ids, "now": now, "db_now": leases.db_now(session), "token": token}
            session.execute(mark, {**params, "until": now + self.lease})
            # Plain rows, not ORM objects: this runs beside the sender's event loop.
            rows = session.execute(read, {"ids": ids, "token": token}).all()
        return token, list(rows)

    def _due_ids(self, session: Session, now: datetime) -> list[int]:
        """The ids of the next due rows, oldest first: pending ones whose time has
        come, and rows whose sender died or whose lease ran out. Two queries: each walks
        the (status, next_attempt_at) index in order and stops at the batch size, where
        one query with OR sorted the whole backlog on every claim."""
        order = (OutboxEntry.next_attempt_at, OutboxEntry.id)
        pending = (OutboxEntry.status == "pending", OutboxEntry.next_attempt_at <= now)
        expired = (OutboxEntry.status == "sending", _abandoned(now, leases.db_now(session)))
        found = []
        for where in (pending, expired):
            query = select(*order).where(*where).order_by(*order).limit(self.batch_size)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            found += session.execute(query).all()
        return [row.id for row in sorted(found)[: self.batch_size]]

    def renew(self, token: str) -> set[int]:
        """Extend the lease of everything still claimed under `token`; the ids of those rows."""
        with self.sessions() as session, session.begin():
            held = session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.claimed_by == token, OutboxEntry.status == "sending")
                .values(claimed_until=self.clock() + self.lease)
                .returning(OutboxEntry.id)
                .execution_options(synchronize_session=False)
            )
            return set(held.scalars())

    def release(self, token: str, error: str) -> None:
        """Give claimed rows back untouched (no attempt counted): the server was unreachable."""
        with self.sessions() as session, session.begin():
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.claimed_by == token, OutboxEntry.status == "sending")
                .values(
                    status="pending", claimed_by=None, claimed_until=None, last_error=redact(error)
                )
                .execution_options(synchronize_session=False)
            )

    def write_marks(self, marks: Sequence[Mark], token: str | None = None) -> int:
        """Record what happened to several jobs in one transaction; the rows written.

        With `token`, only rows still claimed under it are written: a row taken over
        by another sender (this one was thought dead) is theirs to record.
        """
        now = self.clock()
        plain = [m.entry_id for m in marks if m.delivered and m.values == SENT]
        fence = [OutboxEntry.claimed_by == token] if token is not None else []
        written = 0
        with self.sessions() as session, session.begin():
            if plain:
                params = {"ids": plain, "now": now, "token": token}
                written += session.execute(_sent(token is not None), params).rowcount  # type: ignore[attr-defined]
            for mark in marks:
                if mark.entry_id in plain:
                    continue
                values = {**mark.values, "sent_at": now} if mark.delivered else dict(mark.values)
                if values.get("last_error"):  # a server's answer may echo a password
                    values["last_error"] = redact(values["last_error"])
                written += session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id == mark.entry_id, *fence)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
        return written

    def raw_of(self, entry_id: int) -> bytes | None:
        """The rendered bytes of one row (a big message not read with its batch)."""
        with self.readers() as session:
            raw = session.scalar(select(OutboxEntry.raw).where(OutboxEntry.id == entry_id))
        return bytes(raw) if raw is not None else None

    def seconds_until_due(self, longest: float) -> float:
        """How long until the next pending row is due, at most `longest`."""
        with self.readers() as session:
            soonest = session.scalar(
                select(func.min(OutboxEntry.next_attempt_at)).where(OutboxEntry.status == "pending")
            )
        if soonest is None:
            return longest
        return min(max((soonest - self.clock()).total_seconds(), 0.0), longest)


@functools.cache
def _claim_statements() -> tuple[Any, Any]:
    """Claim rows `ids` that are still due for `token` until `until`; read them back.
    Built once (see _sent)."""
    ids = bindparam("ids", expanding=True)
    mark = (
        update(OutboxEntry)
        .where(OutboxEntry.id.in_(ids), _due(bindparam("now"), bindparam("db_now")))
        .values(status="sending", claimed_by=bindparam("token"), claimed_until=bindparam("until"))
        .execution_options(synchronize_session=False)
    )
    read = (
        select(*CLAIMED)
        .outerjoin(Message, Message.id == OutboxEntry.body_message_id)
        .where(OutboxEntry.id.in_(ids), OutboxEntry.claimed_by == bindparam("token"))
        .order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
    )
    return mark, read


@functools.cache
def _sent(fenced: bool) -> Any:
    """Mark rows `ids` sent (only those still claimed under `token` when `fenced`). Built
    once: building it with the ids as literals was most of recording a group of sends."""
    where = [OutboxEntry.id.in_(bindparam("ids", expanding=True))]
    if fenced:
        where.append(OutboxEntry.claimed_by == bindparam("token"))
    return (
        update(OutboxEntry)
        .where(*where)
        .values(**SENT, sent_at=bindparam("now"), attempts=OutboxEntry.attempts + 1)
        .execution_options(synchronize_session=False)
    )


def _due(now: datetime, db_now: datetime) -> Any:
    """Pending and due, or claimed by a sender that died or whose lease ran out."""
    return or_(
        and_(OutboxEntry.status == "pending", OutboxEntry.next_attempt_at <= now),
        and_(OutboxEntry.status == "sending", _abandoned(now, db_now)),
    )


def _abandoned(now: datetime, db_now: datetime) -> Any:
    """A claim whose lease ran out, or whose daemon's heartbeat expired (`db_now`: the
    database's time, as heartbeats use). Claim tokens are `<holder>:<8 hex digits>`."""
    claimer = func.substr(OutboxEntry.claimed_by, 1, func.length(OutboxEntry.claimed_by) - 9)
    return or_(OutboxEntry.claimed_until < now, leases.heartbeat_gone(claimer, db_now))
