"""Automatic mail that matched no ticket: kept apart, listed, purged after N days.

Bounces, complaints and auto-replies about nothing we can name never open a ticket
(they would sit in the agents' queue with an SLA clock running). They are kept here,
raw bytes in the blob store like any other mail, for `maildesk automatic list`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select
from sqlalchemy.orm import Session

from maildesk.common.errors import NotFound
from maildesk.intake.message import ParsedMessage
from maildesk.store.models import (
    Attachment,
    AutomaticMail,
    Blob,
    BlobChunk,
    Message,
    QuarantineEntry,
)


def keep_automatic(
    session: Session,
    msg: ParsedMessage,
    *,
    kind: str,
    reason: str,
    raw_sha256: str,
    source: str,
    details: dict[str, Any],
    now: datetime,
) -> AutomaticMail:
    """Add a row for `msg` (its raw bytes are already stored under `raw_sha256`)."""
    entry = AutomaticMail(
        received_at=now,
        source=source[:200],
        kind=kind[:20],
        reason=reason[:4000],
        from_addr=msg.from_addr[:320],
        subject=msg.subject,
        message_id=msg.message_id,
        dedup_key=msg.dedup_key,
        raw_sha256=raw_sha256,
        raw_size=msg.size,
        details=details,
    )
    session.add(entry)
    session.flush()
    return entry


def kept_keys(session: Session, keys: Iterable[str]) -> dict[str, int]:
    """Which of these dedup keys are kept already: key -> automatic mail id."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    query = select(AutomaticMail.dedup_key, AutomaticMail.id).where(
        AutomaticMail.dedup_key.in_(wanted)
    )
    return {key: entry_id for key, entry_id in session.execute(query)}


def list_automatic(
    session: Session, *, kind: str | None = None, limit: int | None = None
) -> list[AutomaticMail]:
    """Kept automatic mail, newest first."""
    query = select(AutomaticMail).order_by(AutomaticMail.id.desc())
    if kind:
        query = query.where(AutomaticMail.kind == kind)
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def get_automatic(session: Session, entry_id: int) -> AutomaticMail:
    entry = session.get(AutomaticMail, entry_id)
    if entry is None:
        raise NotFound(
            f"automatic mail {entry_id} does not exist (or was purged); "
            "see `maildesk automatic list`"
        )
    return entry


def count_automatic(session: Session | Connection) -> int:
    """How much automatic mail is kept apart now (the metrics gauge)."""
    return session.scalar(select(func.count()).select_from(AutomaticMail)) or 0


def purge_automatic(session: Session, now: datetime, keep_days: float) -> int:
    """Delete automatic mail received more than `keep_days` ago, with the raw bytes that
    nothing else refers to (blobs kept in the database; blob files stay). Returns how many."""
    cutoff = now - timedelta(days=keep_days)
    old = select(AutomaticMail.id, AutomaticMail.raw_sha256).where(
        AutomaticMail.received_at < cutoff
    )
    rows = session.execute(old).all()
    if not rows:
        return 0
    session.execute(delete(AutomaticMail).where(AutomaticMail.id.in_([r[0] for r in rows])))
    shas = {r[1] for r in rows}
    unused = [sha for sha in shas if not _referenced(session, sha)]
    if unused:
        session.execute(delete(Blob).where(Blob.sha256.in_(unused)))
        session.execute(delete(BlobChunk).where(BlobChunk.sha256.in_(unused)))
    return len(rows)


def _referenced(session: Session, sha: str) -> bool:
    checks = (
        exists().where(AutomaticMail.raw_sha256 == sha),
        exists().where(Message.raw_sha256 == sha),
        exists().where(Attachment.sha256 == sha),
        exists().where(QuarantineEntry.raw_sha256 == sha),
    )
    return any(session.scalar(select(check)) for check in checks)
