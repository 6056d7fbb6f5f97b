"""Blobs in the database, in chunks: the `database` backend (`storage.backend`).

A blob over `storage.inline_max_bytes` is copied from its spool file into
`blob_chunks(sha256, seq, data)`, `CHUNK_BYTES` at a time, in a transaction of its own
that commits before the batch referring to it does (as a file is flushed first): so a
referenced blob is never missing, and a batch that rolls back leaves at most a complete,
content-addressed chunk set that the next copy of the same bytes reuses. Reads fetch one
chunk at a time, so neither direction holds a big blob in memory.

Plain `bytea` rows rather than large objects: they are ordinary rows for pg_dump,
replication and DELETE (no orphaned `lo_*` objects, no vacuumlo), `ON CONFLICT` makes
concurrent copies of one blob idempotent, and SQLAlchemy reads them on any driver.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Insert, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from maildesk.common.errors import MaildeskError
from maildesk.store.models import BlobChunk

CHUNK_BYTES = 1 << 20

Sessions = Callable[[], Session]


class BlobMismatch(MaildeskError):
    """Bytes about to be stored do not hash to the SHA-256 they are filed under."""


class ChunkBlobs:
    """Content-addressed blobs as chunk rows; each write commits on its own."""

    def __init__(self, sessions: Sessions, readers: Sessions, chunk_bytes: int = CHUNK_BYTES):
        self.sessions = sessions  # for writes, each in its own transaction
        self.readers = readers
        self.chunk_bytes = chunk_bytes

    def adopt(self, tmp: Path, sha256: str) -> None:
        """Copy the finished spool file `tmp` in; `tmp` stays for the caller."""
        with tmp.open("rb") as fh:
            self.copy(fh, sha256)

    def write(self, data: bytes, sha256: str) -> None:
        self.copy(io.BytesIO(data), sha256)

    def copy(self, stream: BinaryIO, sha256: str) -> bool:
        """Store `stream` under `sha256` and commit; False if it was there already.

        Raises BlobMismatch, with nothing stored, when the bytes hash to something else.
        """
        with self.sessions() as session, session.begin():
            if _has(session, sha256):
                return False
            statement = _insert_new(session)
            digest, seq = hashlib.sha256(), 0
            while True:
                block = stream.read(self.chunk_bytes)
                if not block and seq:
                    break
                digest.update(block)
                session.execute(statement, {"sha256": sha256, "seq": seq, "data": block})
                seq += 1
                if not block:  # an empty blob is one empty chunk: seq 0 marks every blob
                    break
            if digest.hexdigest() != sha256:
                raise BlobMismatch(
                    f"the bytes filed as {sha256} hash to {digest.hexdigest()}; not stored"
                )
        return True

    def open(self, sha256: str) -> BinaryIO | None:
        """A reader that fetches the chunks as it goes; None when the blob is not here."""
        # One session for the whole read: each connection libpq uses keeps a buffer as big
        # as the largest row it fetched, so hopping between pooled ones would multiply it.
        session = self.readers()
        try:
            first = _chunk(session, sha256, 0)
        except BaseException:
            session.close()
            raise
        if first is None:
            session.close()
            return None
        raw = ChunkReader(lambda seq: _chunk(session, sha256, seq), first, session.close)
        return io.BufferedReader(raw, buffer_size=64 << 10)

    def exists(self, sha256: str) -> bool:
        with self.readers() as session:
            return _has(session, sha256)

    def sync(self) -> None:
        """Nothing to flush: every copy has committed already."""


class ChunkReader(io.RawIOBase):
    """A blob's chunks as a stream: `fetch(seq)` gives chunk `seq`, None past the last;
    `release` is called once, at the end or on close (it frees the connection)."""

    def __init__(
        self, fetch: Callable[[int], bytes | None], first: bytes, release: Callable[[], None]
    ):
        self._fetch = fetch
        self._release: Callable[[], None] | None = release
        self._chunk = first
        self._pos = 0
        self._next = 1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._chunk):
            if self._release is None:
                return 0
            self._chunk, self._pos = b"", 0  # let the last chunk go before the next arrives
            chunk = self._fetch(self._next)
            if chunk is None:
                self._done()
                return 0
            self._chunk, self._next = chunk, self._next + 1
        n = min(len(buffer), len(self._chunk) - self._pos)
        memoryview(buffer)[:n] = memoryview(self._chunk)[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._done()
        super().close()

    def _done(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def _chunk(session: Session, sha256: str, seq: int) -> bytes | None:
    data = session.scalar(
        select(BlobChunk.data).where(BlobChunk.sha256 == sha256, BlobChunk.seq == seq)
    )
    return bytes(data) if data is not None else None


def _has(session: Session, sha256: str) -> bool:
    found = session.scalar(
        select(BlobChunk.seq).where(BlobChunk.sha256 == sha256, BlobChunk.seq == 0)
    )
    return found is not None


def _insert_new(session: Session) -> Insert:
    """An INSERT that skips a chunk another process committed meanwhile (same bytes)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(BlobChunk).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(BlobChunk).on_conflict_do_nothing()
    return insert(BlobChunk)
