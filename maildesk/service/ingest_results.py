"""What the ingest pipeline is given (where a message came from) and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceInfo:
    """Where a raw message came from; `uid` makes IMAP ingest idempotent."""

    source: str = "cli"
    uidvalidity: int | None = None
    uid: int | None = None
    queue: str | None = None  # the mailbox's default queue

    @property
    def receipt(self) -> tuple[str, int, int] | None:
        if self.uidvalidity is None or self.uid is None:
            return None
        return (self.source, self.uidvalidity, self.uid)


@dataclass
class IngestResult:
    """What happened to one message."""

    outcome: str  # created, added, automatic (kept apart, no ticket), duplicate,
    # quarantined, answered (an agent's #find)
    ticket_ref: str | None = None
    message_pk: int | None = None
    quarantine_id: int | None = None
    automatic_id: int | None = None  # `maildesk automatic show ID`
    automatic_kind: str = ""  # bounce, complaint, delivery, delay, auto_reply, receipt, own
    reason: str = ""
    notifications: list[str] = field(default_factory=list)  # outbox Message-IDs
    seconds: float = 0.0  # processing time before the commit (its share of the batch write)

    @property
    def stored(self) -> bool:
        return self.outcome in ("created", "added", "automatic", "duplicate", "answered")
