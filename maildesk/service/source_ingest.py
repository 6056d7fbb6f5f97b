"""What every ingested source shares: its lease, its `maildesk status` line, one constructor.

With a holder, every write for a source (each batch commit, each state change) renews
the holder's lease in that transaction, checking its fencing token: a daemon that lost
the source to another can no longer commit for it, even after taking it back. IMAP
mailboxes (`mailbox_ingest`) and Maildirs (`maildir_ingest`) are both built through
`SourceIngest.__init__` and offer the same open / sync / wait / close cycle to the
mailbox worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from maildesk.common.config import MailboxConfig, MaildirConfig
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
    token: int | None = None  # the fencing token the holder took the lease with

    def renew(self, session: Session, *_: Any) -> None:
        """Renew inside the caller's transaction (also usable as a batch hook)."""
        if self.holder is not None:
            leases.renew(
                session, lease_name(self.name), self.holder, self.lease_seconds, self.token
            )

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


class SourceIngest:
    """Ingest of one configured source, for as long as its worker holds the lease.

    Subclasses implement `open`, `sync(interrupt)`, `wait(seconds, interrupt)` and `close`.
    """

    def __init__(
        self,
        desk: Desk,
        config: MailboxConfig | MaildirConfig,
        *,
        holder: str | None = None,
        token: int | None = None,
        lease_seconds: float = 60,
        lock: threading.Lock | None = None,
    ):
        self.desk = desk
        self.config = config
        self.lease = SourceLease(desk, config.name, holder, lease_seconds, token)
        self.lock = lock or threading.Lock()  # one batch written at a time per process

    @property
    def name(self) -> str:
        return self.config.name

    def open(self) -> object:
        raise NotImplementedError

    def sync(self, interrupt: threading.Event | None = None) -> int:
        """Ingest everything pending, batch by batch; the number of messages committed."""
        raise NotImplementedError

    def wait(self, seconds: float, interrupt: threading.Event) -> None:
        """Block until new mail may be there, `interrupt`, or `seconds` pass."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
