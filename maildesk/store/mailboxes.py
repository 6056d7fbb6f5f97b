"""The `mailbox_state` rows: each mailbox's checkpoint (UIDVALIDITY + last UID) and health."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.common.redact import redact
from maildesk.store.models import MailboxState, Receipt

if TYPE_CHECKING:
    from maildesk.common.config import Config


@dataclass(frozen=True)
class Checkpoint:
    """Where ingest of one folder stands: every UID above `last_uid` is new."""

    uidvalidity: int | None
    last_uid: int


def state_row(session: Session, name: str) -> MailboxState:
    """The mailbox's state row, created (and flushed) on first use."""
    row = session.get(MailboxState, name)
    if row is None:
        row = MailboxState(name=name, last_uid=0, state="starting", backlog=0)
        session.add(row)
        session.flush()
    return row


def load_checkpoint(session: Session, name: str) -> Checkpoint:
    row = session.get(MailboxState, name)
    return Checkpoint(None, 0) if row is None else Checkpoint(row.uidvalidity, row.last_uid)


def restart_checkpoint(session: Session, name: str, uidvalidity: int, last_uid: int) -> None:
    """Start over in a folder (first run, or its UIDVALIDITY changed)."""
    row = state_row(session, name)
    row.uidvalidity, row.last_uid = uidvalidity, last_uid


def advance(session: Session, name: str, uids: Iterable[int], backlog: int, now: datetime) -> None:
    """Record a committed batch: move the checkpoint past its UIDs, note success."""
    row = state_row(session, name)
    row.last_uid = max([row.last_uid, *uids])
    row.backlog = max(backlog, 0)
    row.state = "fetching" if backlog > 0 else "idle"
    row.last_success_at = row.updated_at = now


def set_state(
    session: Session,
    name: str,
    state: str,
    now: datetime,
    *,
    error: str | None = None,
    success: bool = False,
    backlog: int | None = None,
) -> None:
    """Record a change of health; an error message is kept until the next success.

    The error is stored redacted: it may quote a server that echoed a password back.
    """
    row = state_row(session, name)
    row.state, row.updated_at = state, now
    if error is not None:
        row.last_error, row.last_error_at = redact(error), now
    if success:
        row.last_success_at = now
    if backlog is not None:
        row.backlog = backlog


def received_uids(session: Session, source: str, uidvalidity: int, uids: list[int]) -> set[int]:
    """Which of `uids` are already committed (a receipt exists)."""
    found: set[int] = set()
    for start in range(0, len(uids), 500):  # keep IN lists small
        chunk = uids[start : start + 500]
        found.update(
            session.scalars(
                select(Receipt.uid).where(
                    Receipt.source == source,
                    Receipt.uidvalidity == uidvalidity,
                    Receipt.uid.in_(chunk),
                )
            )
        )
    return found


def all_states(session: Session) -> list[MailboxState]:
    return list(session.scalars(select(MailboxState).order_by(MailboxState.name)))


FAILING_STATES = ("error", "auth-failed")


def mailbox_status(session: Session, config: Config) -> list[dict[str, Any]]:
    """Each mailbox's state, owner, last success, backlog and last error, for `status`."""
    from maildesk.store import leases

    now = leases.db_now(session)
    rows = {row.name: row for row in all_states(session)}
    held = leases.all_leases(session)
    configured = [m.name for m in config.sources]
    names = configured + sorted(set(rows) - set(configured))
    result = []
    for name in names:
        row = rows.get(name)
        lease = held.get(f"mailbox:{name}")
        owner = lease.holder if lease is not None and lease.live else None
        state = row.state if row is not None else "never run"
        if row is not None and owner is None and state not in ("stopped", "never run"):
            state = f"{state} (no daemon holds it)"
        result.append(
            {
                "name": name,
                "configured": name in configured,
                "state": state,
                "holder": owner,
                "last_success_at": row.last_success_at if row else None,
                "backlog": row.backlog if row else None,
                "last_error": row.last_error if row else None,
                "last_error_at": row.last_error_at if row else None,
                "uidvalidity": row.uidvalidity if row else None,
                "last_uid": row.last_uid if row else None,
                # A mailbox taken out of maildesk.yaml no longer fails: its last state
                # stays listed (as not configured), but it is nothing to alert on.
                "failing": name in configured and row is not None and row.state in FAILING_STATES,
                "now": now,
            }
        )
    return result
