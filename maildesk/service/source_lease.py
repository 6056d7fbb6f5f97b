"""A source's lease and its `maildesk status` line, written in the same transactions.

With a holder, every write for a source (each batch commit, each state change) renews
the holder's lease in that transaction: a daemon that lost the source to another can
no longer commit for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from maildesk.store import leases
from maildesk.store.db import temporary_failures
from maildesk.store.mailboxes import set_state

if TYPE_CHECKING:
    from maildesk.service.desk import Desk


def lease_name(source: str) -> str:
    return f"mailbox:{source}"


@dataclass(frozen=True)
class SourceLease:
    """Renews one source's lease and records its state, for IMAP and Maildir ingest alike."""

    desk: Desk
    name: str
    holder: str | None = None  # None: no lease (a one-off run without the daemon)
    lease_seconds: float = 60

    def renew(self, session: Session, *_: Any) -> None:
        """Renew inside the caller's transaction (also usable as a batch hook)."""
        if self.holder is not None:
            leases.renew(session, lease_name(self.name), self.holder, self.lease_seconds)

    def record(self, state: str, *, success: bool = False, backlog: int | None = None) -> None:
        """Set the source's state (and renew the lease) in a transaction of its own."""
        with temporary_failures(), self.desk.sessions() as session, session.begin():
            self.renew(session)
            set_state(
                session,
                self.name,
                state,
                self.desk.pipeline.clock(),
                success=success,
                backlog=backlog,
            )
