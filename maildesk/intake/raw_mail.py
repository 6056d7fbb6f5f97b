"""One message as it arrives: bytes in memory, or spooled to disk when it is big.

A stream (a file, an MTA pipe) is read in chunks: small messages stay in memory,
anything larger goes to a spool file inside the blob store, hashed on the way, so a
message is never held in memory whole beyond `memory_limit`.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from maildesk.intake.blob_writer import BlobWriter, InlineSink

CHUNK = 1 << 20
MAX_HEAD = 1 << 20  # headers beyond 1 MiB are cut: no real mail has that many
_HEADER_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")


@dataclass
class IncomingMail:
    """A received message; `data` when it is in memory, `path` when it is spooled."""

    size: int
    sha256: str
    data: bytes | None = None
    path: Path | None = None
    # Set when the spool stopped keeping bytes past `keep_limit` (oversized_keep: headers).
    truncated: bool = False
    _head: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> IncomingMail:
        raw = bytes(raw)
        return cls(len(raw), hashlib.sha256(raw).hexdigest(), data=raw)

    @classmethod
    def spool(
        cls,
        stream: BinaryIO,
        blobs: BlobWriter,
        *,
        memory_limit: int,
        keep_limit: int | None = None,
    ) -> IncomingMail:
        """Read `stream` to the end; bytes past `keep_limit` are counted and hashed, not kept."""
        first = _read_up_to(stream, memory_limit + 1)
        if len(first) <= memory_limit:
            return cls.from_bytes(first)
        digest = hashlib.sha256(first)
        size = len(first)
        fh, path = blobs.temp_file()
        truncated = False
        try:
            with fh:
                fh.write(first)
                del first
                while block := stream.read(CHUNK):
                    digest.update(block)
                    if keep_limit is None or size < keep_limit:
                        fh.write(block)
                    else:
                        truncated = True
                    size += len(block)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return cls(size, digest.hexdigest(), path=path, truncated=truncated)

    def open(self) -> BinaryIO:
        """The message bytes as a file object (from memory or from the spool)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")

    def bytes(self) -> bytes:
        """The whole message in memory; only for messages the caller knows are small."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def head(self) -> bytes:
        """The header block, up to and including the blank line (at most MAX_HEAD bytes)."""
        if self._head is None:
            with self.open() as fh:
                start = fh.read(MAX_HEAD)
            match = _HEADER_END.search(start)
            self._head = start[: match.end()] if match else start
        return self._head

    def store(self, blobs: BlobWriter, inline: InlineSink) -> str:
        """Keep the raw message (small ones through `inline`); returns its SHA-256."""
        if self.data is not None:
            return blobs.put(self.data, inline, self.sha256)
        assert self.path is not None
        if self.truncated:
            # Only the first part was kept: file it under the hash of what is there.
            with self.path.open("rb") as fh:
                return blobs.put_stream(fh)[0]
        return blobs.adopt(self.path, self.sha256)

    def discard(self) -> None:
        """Remove the spool file, if any."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def discard_all(mails: Iterable[IncomingMail | None]) -> None:
    """Remove the spool files of several messages (None: nothing was read)."""
    for mail in mails:
        if mail is not None:
            mail.discard()


def _read_up_to(stream: BinaryIO, limit: int) -> bytes:
    parts: list[bytes] = []
    have = 0
    while have < limit:
        block = stream.read(min(CHUNK, limit - have))
        if not block:
            break
        parts.append(block)
        have += len(block)
    return b"".join(parts)
