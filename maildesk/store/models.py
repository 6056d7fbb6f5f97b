"""SQLAlchemy 2 typed models. Every change goes through Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on SQLite as well as PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # Subject tokens name tickets case-insensitively (store.lookup).
        Index("ix_tickets_ref_upper", func.upper(text("ref"))),
        # least_open counts open tickets per agent each batch: from the index alone.
        Index("ix_tickets_open_by_assignee", "status", "assignee", "spam", "merged_into_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)
    priority: Mapped[str] = mapped_column(String(20))
    queue: Mapped[str] = mapped_column(String(100), index=True)
    assignee: Mapped[str | None] = mapped_column(String(320), index=True)
    requester: Mapped[str] = mapped_column(String(320), index=True)
    requester_name: Mapped[str] = mapped_column(String(320), default="")
    language: Mapped[str] = mapped_column(String(10), default="en")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    rules_fired: Mapped[list[Any]] = mapped_column(JSON, default=list)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # Outlook's conversation root (base64 Thread-Index) when the request carried one.
    thread_index: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    last_customer_at: Mapped[datetime | None]
    last_agent_at: Mapped[datetime | None]
    sla_policy: Mapped[str | None] = mapped_column(String(100))
    first_response_due: Mapped[datetime | None]
    resolution_due: Mapped[datetime | None]
    sla_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    spam: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    linked_from_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None]  # when the requester last rated (satisfaction)

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", foreign_keys="Message.ticket_id"
    )
    participants: Mapped[list[Participant]] = relationship(
        back_populates="ticket", order_by="Participant.id"
    )
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(1000), unique=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    author_kind: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    # Indexed: each batch looks up the mail its replies answer (see store.lookup).
    message_id: Mapped[str | None] = mapped_column(String(1000), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    from_addr: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None]
    text_body: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str | None] = mapped_column(Text)
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    raw_size: Mapped[int] = mapped_column(BigInteger, default=0)
    source: Mapped[str] = mapped_column(String(200), default="")
    screen_reason: Mapped[str | None] = mapped_column(Text)
    commands: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]

    ticket: Mapped[Ticket] = relationship(back_populates="messages", foreign_keys=[ticket_id])
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id"
    )


class Blob(Base):
    """Raw messages and attachments up to `storage.inline_max_bytes`, keyed by SHA-256.

    Kept in the database so they commit atomically with the rows that point at them;
    bigger ones live in `blob_chunks` or as files under the storage path (store/blobs.py).
    """

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class BlobChunk(Base):
    """Blobs over `storage.inline_max_bytes` with `storage.backend: database`, in pieces.

    A blob's chunks (seq 0, 1, ...) are committed together in their own transaction, so
    a blob is either whole or absent; seq 0 is there even for an empty blob.
    """

    __tablename__ = "blob_chunks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_id: Mapped[str | None] = mapped_column(String(1000))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)

    message: Mapped[Message] = relationship(back_populates="attachments")


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("ticket_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    address: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(320), default="")
    role: Mapped[str] = mapped_column(String(20))  # requester, cc, watcher
    bouncing: Mapped[bool] = mapped_column(Boolean, default=False)

    ticket: Mapped[Ticket] = relationship(back_populates="participants")


class Event(Base):
    """The audit log: every change to a ticket, with who made it and why."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class ThreadRef(Base):
    """Every Message-ID we stored or sent, mapped to its ticket, for In-Reply-To threading."""

    __tablename__ = "thread_refs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(1000), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    ours: Mapped[bool] = mapped_column(Boolean, default=False)
    visible: Mapped[bool] = mapped_column(Boolean, default=True)  # seen by the requester
    created_at: Mapped[datetime]


class Receipt(Base):
    """A message taken from a source (mailbox UID), recorded with the change it caused."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("source", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    dedup_key: Mapped[str | None] = mapped_column(String(1000))
    outcome: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]


class MailboxState(Base):
    """Where each mailbox's ingest stands: checkpoint, health, backlog."""

    __tablename__ = "mailbox_state"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(40), default="unknown")
    backlog: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]


class Lease(Base):
    """Ownership of a mailbox or a scheduled job by one daemon, with an expiry.

    `token` grows by one with each new holder: a fencing token checked on every write.
    A daemon's heartbeat (`daemon:<holder>`) keeps there how many mailboxes it serves.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]
    token: Mapped[int] = mapped_column(BigInteger, default=0)


class QuarantineEntry(Base):
    """A message that could not be processed: raw bytes kept, reason shown."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(200), default="")
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    raw_size: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="held")  # held, released
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    ticket_ref: Mapped[str | None] = mapped_column(String(40))


class OutboxEntry(Base):
    """A notification, rendered and waiting to be sent; written with the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    template: Mapped[str] = mapped_column(String(100))
    audience: Mapped[str] = mapped_column(String(20))  # requester, agents, admin
    automatic: Mapped[bool] = mapped_column(Boolean, default=True)
    to_addr: Mapped[str] = mapped_column(String(320), index=True)
    recipients: Mapped[list[Any]] = mapped_column(JSON)  # envelope recipients
    envelope_from: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(1000), unique=True)
    language: Mapped[str] = mapped_column(String(10), default="en")
    # What to render: template variables and header data, fixed when the change happened.
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set when the notification relays a stored message's text (a customer's mail to
    # the agents): the context then has no "body", which is read from that message when
    # the row is claimed, so the text is stored once and not once more for every reader.
    body_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    subject: Mapped[str] = mapped_column(Text, default="")
    # The exact bytes, rendered before the first attempt so every retry resends the same mail.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    body_message: Mapped[Message | None] = relationship()

    @property
    def stored_body(self) -> str | None:
        """The text of the message this notification relays (None: its body is in context)."""
        return self.body_message.text_body if self.body_message is not None else None


class AssignmentState(Base):
    """The last agent given a ticket in each queue, for round-robin assignment."""

    __tablename__ = "assignment_state"

    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_agent: Mapped[str | None] = mapped_column(String(320))


class AnsweredMail(Base):
    """Mail answered without a ticket (an agent's `#find`): not stored, but known, so the
    same mail taken again (after a crash, or fed twice) is a duplicate, not asked again."""

    __tablename__ = "answered_mail"

    dedup_key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    answered_at: Mapped[datetime]


class AutomaticMail(Base):
    """Automatic mail that matched no ticket (bounces, complaints, auto-replies): kept
    apart from the agents' queue for `limits.automatic_keep_days`, raw bytes in blobs."""

    __tablename__ = "automatic_mail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20))  # bounce, complaint, delivery, auto_reply...
    reason: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(1000))
    dedup_key: Mapped[str] = mapped_column(String(1000), unique=True)
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    raw_size: Mapped[int] = mapped_column(BigInteger, default=0)
    # What a report says: recipients with action and status, the message it returns.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
