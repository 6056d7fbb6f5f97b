"""What intake needs of the blob store: a place for big messages and parts as they stream in.

Defined here, by its user, so intake never imports the store; `store.blobs.BlobStore`
is the implementation the service wires in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

# Receives (sha256, bytes) of a small blob that is to be written with the batch's rows.
InlineSink = Callable[[str, bytes], None]


class BlobWriter(Protocol):
    """Content-addressed storage, keyed by SHA-256."""

    def put(self, data: bytes, inline: InlineSink, sha256: str | None = None) -> str:
        """Store `data` (small blobs through `inline`); return its SHA-256."""
        ...

    def put_file(self, data: bytes, sha256: str | None = None) -> str:
        """Store `data` outside the batch's transaction; return its SHA-256."""
        ...

    def put_stream(self, stream: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
        """Store a stream without holding it in memory; (sha256, size)."""
        ...

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """A new spool file next to the store (to adopt once written)."""
        ...

    def adopt(self, tmp: Path, sha256: str) -> str:
        """Move a written spool file into the store under its SHA-256."""
        ...

    def get_file(self, sha256: str) -> bytes:
        """The bytes of a blob stored with put_file."""
        ...


def stream_into(writer: BlobWriter, stream: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
    """put_stream for any BlobWriter: copy `stream` into one of its spool files, hashing as
    it goes, and adopt the file under its SHA-256; the spool name is removed either way."""
    fh, tmp = writer.temp_file()
    digest, size = hashlib.sha256(), 0
    try:
        with fh:
            while block := stream.read(chunk):
                digest.update(block)
                size += len(block)
                fh.write(block)
        writer.adopt(tmp, digest.hexdigest())
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest(), size
