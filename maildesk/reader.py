"""Reading incoming mail into ParsedMessages, within the size and time limits.

Small messages are parsed whole (in a sandboxed child process by default, killed
when it runs over `limits.processing_seconds`). Messages bigger than
`skeleton_from` are read through a skeleton: their big part bodies stream straight
into the blob store and only what is left is parsed. Messages over
`limits.max_message_bytes` are read by their headers alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from maildesk.config import Config
from maildesk.errors import ParseError, ProcessingTimeout, StageError
from maildesk.incoming import IncomingMail
from maildesk.largemail import SkeletonTooLarge, cut_skeleton, expand_stored_tnef
from maildesk.parse import ParsedMessage, ParseLimits, human_size
from maildesk.sandbox import InlineParser, MessageParser, SandboxedParser, shared_sandbox
from maildesk.store.blobs import BlobStore, InlineSink


class MessageReader:
    """Turns IncomingMail into ParsedMessages, enforcing the configured limits."""

    # Messages bigger than this are read through a skeleton (see largemail.py), and
    # their part bodies above `spill_bytes` go straight to the blob store.
    skeleton_from: int = 4 << 20
    spill_bytes: int = 256 << 10
    parallel: int = 2  # sandboxed parses of one batch run side by side (one per core)

    def __init__(self, config: Config, blobs: BlobStore, parser: MessageParser | None = None):
        self.config = config
        self.blobs = blobs
        self.parser = parser or (
            shared_sandbox() if config.limits.isolate_parser else InlineParser()
        )
        self._pool: ThreadPoolExecutor | None = None

    def receive(self, stream: BinaryIO) -> IncomingMail:
        """Read a message from `stream`: in memory when small, else into a spool file.

        The caller calls `discard()` on the result when done with it.
        """
        limits = self.config.limits
        keep = limits.max_message_bytes if limits.oversized_keep == "headers" else None
        return IncomingMail.spool(
            stream, self.blobs, memory_limit=self.skeleton_from, keep_limit=keep
        )

    def read_all(self, mails: Sequence[IncomingMail]) -> list[ParsedMessage | StageError]:
        """Read a batch; sandboxed parses run in parallel, results keep the input order."""
        if len(mails) > 1 and isinstance(self.parser, SandboxedParser) and self.parallel > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="maildesk-parse")
            return list(self._pool.map(self.read, mails))
        return [self.read(mail) for mail in mails]

    def read(self, mail: IncomingMail) -> ParsedMessage | StageError:
        """One message, or the StageError saying why it cannot be read."""
        try:
            if mail.size > self.config.limits.max_message_bytes:
                return self._headers_only(mail, self._too_big(mail))
            if mail.size <= self.skeleton_from:
                msg = self._parse_bytes(mail.bytes())
            else:
                msg = self._parse_large(mail)
        except (ParseError, ProcessingTimeout) as exc:
            return StageError("parse", str(exc))
        except Exception as exc:
            return StageError("parse", f"parser failed: {type(exc).__name__}: {exc}")
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
        return ParseLimits(max_attachment_bytes=self.config.limits.max_attachment_bytes)

    def _parse_bytes(self, raw: bytes, spilled: Any = None) -> ParsedMessage:
        timeout = self.config.limits.processing_seconds
        return self.parser.parse(raw, self._limits(), spilled, timeout)

    def _parse_large(self, mail: IncomingMail) -> ParsedMessage:
        """Cut big bodies out to the blob store as they stream by; parse what is left."""
        try:
            with mail.open() as fh:
                skeleton = cut_skeleton(
                    fh,
                    self.blobs,
                    spill_bytes=self.spill_bytes,
                    max_attachment_bytes=self.config.limits.max_attachment_bytes,
                    body_spill_bytes=self._limits().max_body_bytes,
                )
        except SkeletonTooLarge as exc:
            return self._headers_only(mail, f"{exc}, too big to read")
        msg = self._parse_bytes(skeleton.data, skeleton.spilled)
        msg.defects.extend(skeleton.defects)
        expand_stored_tnef(msg, self.blobs, self.config.limits.max_attachment_bytes)
        return msg

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
