"""A message as intake hands it on: ParsedMessage, its addresses and attachments.

Plain data, importable anywhere without the parser (the render process, the rules).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

SPILL_HEADER = "X-Maildesk-Spilled"


@dataclass(frozen=True)
class Address:
    """A mailbox: display name and lower-cased address."""

    name: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True)
class ParsedAttachment:
    """One attached file: its bytes, or the hash of bytes already in the blob store."""

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False
    blob: str | None = None  # SHA-256 of content written to the blob store while parsing
    blob_size: int = 0
    # Hashed where the attachment is made (the parser child), once: deciding and
    # storing ask for it several times, in the daemon's busiest thread.
    digest: str = field(default="", init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.blob:
            object.__setattr__(self, "digest", hashlib.sha256(self.data).hexdigest())

    @property
    def size(self) -> int:
        return self.blob_size if self.blob else len(self.data)

    @property
    def sha256(self) -> str:
        return self.blob or self.digest


@dataclass(frozen=True)
class DroppedAttachment:
    """An attachment whose content was not kept, and why."""

    filename: str
    content_type: str
    size: int
    reason: str


@dataclass(frozen=True)
class ParseLimits:
    """Size and memory limits applied while parsing."""

    max_attachment_bytes: int = 25 * 1024 * 1024
    # A text body bigger than this is kept as an attachment, not as ticket text.
    max_body_bytes: int = 2 * 1024 * 1024
    # The large-message reader cuts part bodies over this out to the blob store.
    spill_bytes: int = 256 * 1024
    # The most a parser child may hold (its RLIMIT_AS); 0: no limit. Not enforced in-process.
    memory_bytes: int = 0
    # Make each message's search vector too (a desk on PostgreSQL): the child has the time.
    search_vectors: bool = False


@dataclass(frozen=True)
class StoredPart:
    """A part body the large-message reader already decoded into the blob store."""

    sha256: str | None  # None: not kept, it was over the attachment limit
    size: int
    name_hint: str = ""  # for an attached message: its subject
    head: bytes = b""  # for an attached message: its header block (a bounce names it there)


@dataclass(frozen=True)
class Spilled:
    """Part bodies cut out of a skeleton message; `nonce` makes the markers unforgeable."""

    nonce: str
    parts: dict[int, StoredPart]

    def lookup(self, part: Message) -> StoredPart | None:
        value = str(part.get(SPILL_HEADER, ""))
        nonce, _, index = value.strip().partition(":")
        if nonce != self.nonce or not index.isdigit():
            return None
        return self.parts.get(int(index))


@dataclass(frozen=True)
class Recipient:
    """One recipient's fields in a delivery status report (RFC 3464)."""

    address: str
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str = ""  # e.g. 5.1.1
    diagnostic: str = ""

    @property
    def failed(self) -> bool:
        return self.action == "failed" or (not self.action and self.status.startswith("5"))


@dataclass(frozen=True)
class DeliveryStatus:
    """What a report says, read with the message (`intake.delivery_status`): for whom
    delivery failed, and where it names the message it returns (`triage.bounce` picks
    the one that is ours)."""

    # RFC 3464 fields, else an SES notification's recipients, else flufl.bounce's finds.
    recipients: tuple[Recipient, ...] = ()
    # From the first header block of a returned message that has either.
    quoted_id: str | None = None
    quoted_ref: str | None = None
    # For a bounce that quotes the message as text: the first <id@domain> per domain
    # (lower-cased), and an X-Maildesk-Ticket: line.
    text_ids: dict[str, str] = field(default_factory=dict)
    text_ref: str | None = None
    kind: str = "bounce"  # bounce, complaint (ARF, SES) or delivery (SES: it arrived)
    # What it was read from: "dsn" (RFC 3464), "arf", "ses", "text" (flufl.bounce), or ""
    # (nothing that names a recipient).
    source: str = ""
    reported_id: str | None = None  # the Message-ID an SES notification names


@dataclass
class ParsedMessage:
    """Everything the deciding steps need to know about one incoming message."""

    sha256: str
    size: int
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    sender: Address | None
    reply_to: list[Address]
    to: list[Address]
    cc: list[Address]
    date: datetime | None
    text: str
    html: str | None
    attachments: list[ParsedAttachment]
    headers: list[tuple[str, str]]
    content_type: str
    defects: list[str] = field(default_factory=list)
    dropped: list[DroppedAttachment] = field(default_factory=list)
    # Why only the headers were read (the message was over the size limit), or "".
    oversized: str = ""
    # Read when the message may be a report (intake.report_signals), else None.
    delivery: DeliveryStatus | None = None
    # The first attached message (see attached_original), read by the parser with this
    # one's limits, one level deep: a forward's original is never parsed in the daemon.
    attached_message: ParsedMessage | None = None
    # PostgreSQL's search vector of the message without its ticket ref, made by the
    # parser child (intake.search_document), and a checksum of the text it was made of.
    search_vector: str | None = None
    search_vector_checksum: int = 0
    _header_index: dict[str, list[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def dedup_key(self) -> str:
        """Message-ID when present, otherwise the content hash."""
        return f"mid:{self.message_id}" if self.message_id else f"sha256:{self.sha256}"

    @property
    def from_addr(self) -> str:
        return self.sender.address if self.sender else ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), decoded."""
        values = (self._header_index or self._by_name()).get(name.lower())
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name`, decoded."""
        return list((self._header_index or self._by_name()).get(name.lower(), ()))

    def _by_name(self) -> dict[str, list[str]]:
        # Screening, threading and rules ask for dozens of headers per message.
        if self._header_index is None:
            index: dict[str, list[str]] = {}
            for name, value in self.headers:
                index.setdefault(name.lower(), []).append(value)
            self._header_index = index
        return self._header_index

    @property
    def recipients(self) -> list[Address]:
        return [*self.to, *self.cc]


def attached_original(attachments: list[ParsedAttachment]) -> ParsedAttachment | None:
    """The first attached message whose bytes are at hand (a big one went to the blob
    store while parsing, and is not read again)."""
    for attachment in attachments:
        if attachment.content_type == "message/rfc822" and attachment.data:
            return attachment
    return None


def human_size(n: int) -> str:
    """A size as people read it: 812 bytes, 3.4 MB."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"
