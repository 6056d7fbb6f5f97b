"""Reading incoming mail into ParsedMessages, within the size, time and memory limits.

Small messages are parsed whole. Messages bigger than `skeleton_from` are read
through a skeleton: their big part bodies stream straight into the blob store and
only what is left is parsed. Messages over `limits.max_message_bytes` are read by
their headers alone. All of it happens in sandboxed child processes by default
(`parser_children`), stopped at `limits.processing_seconds` and
`limits.parser_memory_bytes`; this process never parses received bytes itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from maildesk.common.config import Config
from maildesk.common.db_url import parse_url
from maildesk.common.errors import ParseError, ProcessingTimeout, SkeletonTooLarge, StageError
from maildesk.intake.blob_writer import BlobWriter, InlineSink
from maildesk.intake.message import ParsedMessage, ParseLimits, human_size
from maildesk.intake.parser_children import (
    InlineParser,
    MessageParser,
    SandboxedParser,
    shared_sandbox,
)
from maildesk.intake.raw_mail import IncomingMail


class MessageReader:
    """Turns IncomingMail into ParsedMessages, enforcing the configured limits."""

    # Messages bigger than this are read through a skeleton (see large_mail.py), and
    # their part bodies above `spill_bytes` go straight to the blob store.
    skeleton_from: int = 4 << 20
    spill_bytes: int = 256 << 10
    # Sandboxed parses of one batch that run side by side. One: a child parses a batch
    # in about half the time the main process takes to decide and write the one before,
    # so a second child only competed for the cores (bench/postgres.py on 2 cores, one
    # daemon: 647-653 against 552-595 messages/s, 26 MiB less; SQLite within noise).
    parallel: int = 1
    # Messages per round trip to a child: it holds their results (and their pickle) at
    # once, so this bounds its memory (200 at a time: 37 MiB peak against 29 idle).
    chunk: int = 50

    def __init__(self, config: Config, blobs: BlobWriter, parser: MessageParser | None = None):
        self.config = config
        self.blobs = blobs
        self.parser = parser or (
            shared_sandbox() if config.limits.isolate_parser else InlineParser()
        )
        self._pool: ThreadPoolExecutor | None = None
        # On PostgreSQL the parser children also make each message's search vector.
        self.on_postgresql = parse_url(config.database.url).backend == "postgresql"

    def start(self) -> None:
        """Start the parser children now (a daemon does at start-up), so the first batch
        does not wait for their imports."""
        if isinstance(self.parser, SandboxedParser):
            self.parser.prestart(self.parallel)

    def receive(self, stream: BinaryIO) -> IncomingMail:
        """Read a message from `stream`: in memory when small, else into a spool file.

        The caller calls `discard()` on the result when done with it.
        """
        limits = self.config.limits
        keep = limits.max_message_bytes if limits.oversized_keep == "headers" else None
        return IncomingMail.spool(
            stream, self.blobs, memory_limit=self.skeleton_from, keep_limit=keep
        )

    def read_later(
        self, mails: Sequence[IncomingMail]
    ) -> Callable[[], list[ParsedMessage | StageError]]:
        """Start reading a batch; the returned function waits for the results (input order).

        With the sandboxed parser the reading goes on in the background: the small messages
        in `parallel` lanes of round trips of at most `chunk`, big ones one by one. Inline
        parsing (which holds the GIL anyway, and whose time limit needs the main thread)
        happens right here.
        """
        if not mails or not isinstance(self.parser, SandboxedParser):
            results = [self.read(mail) for mail in mails]
            return lambda: results
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="maildesk-parse")
        whole = [self._whole(mail) for mail in mails]
        small = [i for i, fits in enumerate(whole) if fits]
        lanes = [small[k :: self.parallel] for k in range(self.parallel)]
        size = self.chunk
        chunks = [lane[i : i + size] for lane in lanes for i in range(0, len(lane), size)]
        pending = [
            (chunk, self._pool.submit(self._read_chunk, [mails[i] for i in chunk]))
            for chunk in chunks
            if chunk
        ]
        pending += [
            ([i], self._pool.submit(lambda m: [self.read(m)], mails[i]))
            for i, fits in enumerate(whole)
            if not fits
        ]

        def wait() -> list[ParsedMessage | StageError]:
            results: list[ParsedMessage | StageError | None] = [None] * len(mails)
            for indexes, future in pending:
                for i, result in zip(indexes, future.result(), strict=True):
                    results[i] = result
            return [r for r in results if r is not None]

        return wait

    def read(self, mail: IncomingMail) -> ParsedMessage | StageError:
        """One message, or the StageError saying why it cannot be read."""
        try:
            if mail.size > self.config.limits.max_message_bytes:
                return self._headers_only(mail, self._too_big(mail))
            if mail.size <= self.skeleton_from:
                msg = self._parse_bytes(mail.bytes())
            else:
                msg = self._parse_large(mail)
        except Exception as exc:
            return self._failed(exc)
        return self._with_digest(mail, msg)

    def _whole(self, mail: IncomingMail) -> bool:
        """Small enough to be parsed whole, in memory."""
        return mail.size <= min(self.skeleton_from, self.config.limits.max_message_bytes)

    def _read_chunk(self, mails: list[IncomingMail]) -> list[ParsedMessage | StageError]:
        assert isinstance(self.parser, SandboxedParser)
        timeout = self.config.limits.processing_seconds
        try:
            parsed = self.parser.parse_many([m.bytes() for m in mails], self._limits(), timeout)
        except Exception as exc:  # no child could be started: every message fails alike
            return [self._failed(exc) for _ in mails]
        return [
            self._failed(msg) if isinstance(msg, Exception) else self._with_digest(mail, msg)
            for mail, msg in zip(mails, parsed, strict=True)
        ]

    @staticmethod
    def _failed(exc: Exception) -> StageError:
        if isinstance(exc, ParseError | ProcessingTimeout):
            return StageError("parse", str(exc))
        return StageError("parse", f"parser failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _with_digest(mail: IncomingMail, msg: ParsedMessage) -> ParsedMessage:
        if not msg.oversized:
            msg.sha256, msg.size = mail.sha256, mail.size
        return msg

    def keep_raw(self, mail: IncomingMail, msg: ParsedMessage, inline: InlineSink) -> str:
        """Store the raw message (or, with oversized_keep: headers, only its headers)."""
        if self._drops_body(mail):
            return self.blobs.put(mail.head(), inline, msg.sha256)
        return mail.store(self.blobs, inline)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _limits(self) -> ParseLimits:
        limits = self.config.limits
        return ParseLimits(
            max_attachment_bytes=limits.max_attachment_bytes,
            spill_bytes=self.spill_bytes,
            memory_bytes=limits.parser_memory_bytes,
            search_vectors=self.on_postgresql,
        )

    def _parse_bytes(self, raw: bytes) -> ParsedMessage:
        timeout = self.config.limits.processing_seconds
        return self.parser.parse(raw, self._limits(), None, timeout)

    def _parse_large(self, mail: IncomingMail) -> ParsedMessage:
        """Cut big bodies out to the blob store as they stream by; parse what is left."""
        timeout = self.config.limits.processing_seconds
        try:
            return self.parser.read_large(mail, self.blobs, self._limits(), timeout)
        except SkeletonTooLarge as exc:
            return self._headers_only(mail, f"{exc}, too big to read")

    def _too_big(self, mail: IncomingMail) -> str:
        limit = human_size(self.config.limits.max_message_bytes)
        return f"the message is {human_size(mail.size)}, over the {limit} limit"

    def _drops_body(self, mail: IncomingMail) -> bool:
        limits = self.config.limits
        return mail.size > limits.max_message_bytes and limits.oversized_keep == "headers"

    def _headers_only(self, mail: IncomingMail, why: str) -> ParsedMessage:
        """A message read by its headers alone; its text says why."""
        head = mail.head()
        msg = self._parse_bytes(head)
        kept = "Only its headers were kept." if self._drops_body(mail) else "It is stored as is."
        msg.oversized = why
        msg.text = f"[maildesk: {why[:1].upper()}{why[1:]}; its content was not read. {kept}]"
        msg.html = None
        msg.attachments, msg.dropped = [], []
        msg.size = mail.size
        msg.sha256 = hashlib.sha256(head).hexdigest() if self._drops_body(mail) else mail.sha256
        return msg
