"""Content-addressed storage for raw messages and attachments.

Everything is stored under its SHA-256, so the same attachment sent twice is stored
once and a name chosen by a sender never becomes a path. Blobs up to a size limit go
into the `blobs` table (blob_rows.py) in the same transaction as the rows that point
at them (fast, atomic, one backup). Bigger ones go to the backend `storage.backend`
names, written and made durable before the transaction that refers to them commits:
chunk rows in the database (blob_chunks.py) or files `root/ab/<sha256>` (blob_files.py).

Reads look in every place, the configured one first, so a blob is found wherever it is
while `maildesk blobs migrate` moves files into the database.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from maildesk.common.config import StorageConfig
from maildesk.intake.blob_writer import InlineSink, stream_into
from maildesk.store.blob_chunks import ChunkBlobs
from maildesk.store.blob_files import FileBlobs
from maildesk.store.blob_rows import insert_blobs
from maildesk.store.db import make_engine, make_sessionmaker
from maildesk.store.models import Blob

__all__ = ["BigBlobs", "BlobStore", "InlineSink", "build_blob_store", "insert_blobs"]


class BigBlobs(Protocol):
    """Where blobs over `inline_max` live; an object store would be one more of these."""

    def adopt(self, tmp: Path, sha256: str) -> None:
        """Take in the finished spool file `tmp`, whose bytes hash to `sha256`."""
        ...

    def write(self, data: bytes, sha256: str) -> None: ...

    def open(self, sha256: str) -> BinaryIO | None:
        """The blob as a stream, never read whole; None when it is not here."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def sync(self) -> None:
        """Make what was written durable; called before the batch's transaction commits."""
        ...


class BlobStore:
    """Puts bytes in the `blobs` table or the big-blob backend by size; gets them back."""

    def __init__(
        self,
        root: Path,
        *,
        inline_max: int = 1024 * 1024,
        fsync: bool = True,
        sessions: Callable[[], Session] | None = None,
        big: BigBlobs | None = None,
        also_read: Sequence[BigBlobs] = (),
    ):
        """Big blobs go to `big` (default: files under `root`); reads also look in
        `also_read` and, when `big` is something else, in the files."""
        self.files = FileBlobs(root, fsync=fsync)
        self.root = self.files.root
        self.sessions = sessions  # for reads made outside a caller's transaction
        self.inline_max = inline_max
        self.big: BigBlobs = big or self.files
        self.places: list[BigBlobs] = [self.big, *also_read, *([self.files] if big else [])]
        self.on_close: list[Callable[[], None]] = []

    def put(self, data: bytes, inline: InlineSink, sha256: str | None = None) -> str:
        """Store `data`: small ones through `inline` (a DB row), big ones in the backend."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        if len(data) <= self.inline_max:
            inline(digest, data)
        else:
            self.big.write(data, digest)
        return digest

    def put_file(self, data: bytes, sha256: str | None = None) -> str:
        """Store `data` in the backend whatever its size (for parts spilled while parsing)."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        self.big.write(data, digest)
        return digest

    def put_stream(self, stream: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
        """Store a stream without holding it in memory; return (SHA-256, size)."""
        return stream_into(self, stream, chunk)

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """A new spool file under the storage path (to adopt once written)."""
        return self.files.temp_file()

    def adopt(self, tmp: Path, sha256: str) -> str:
        """File the finished spool file `tmp` under `sha256`; `tmp` stays for the caller."""
        self.big.adopt(tmp, sha256)
        return sha256

    def get(self, sha256: str, session: Session | None = None) -> bytes:
        """The stored bytes, all in memory; FileNotFoundError when they are nowhere."""
        data = self._row(sha256, session)
        if data is not None:
            return data
        with self._open_big(sha256) as fh:
            return fh.read()

    def open(self, sha256: str, session: Session | None = None) -> BinaryIO:
        """The stored bytes as a stream; a big blob is never read into memory whole."""
        data = self._row(sha256, session)
        if data is not None:
            return io.BytesIO(data)
        return self._open_big(sha256)

    def exists(self, sha256: str, session: Session | None = None) -> bool:
        if self._row(sha256, session) is not None:
            return True
        return any(place.exists(sha256) for place in [*self.places, self.places[0]])

    def get_file(self, sha256: str) -> bytes:
        """The bytes of a blob stored with put_file or adopt (spilled parts)."""
        with self._open_big(sha256) as fh:
            return fh.read()

    def path_for(self, sha256: str) -> Path:
        """Where the files backend keeps (or would keep) this blob."""
        return self.files.path_for(sha256)

    def sync(self) -> None:
        """Make big blobs written since the last sync durable; call before committing rows."""
        self.big.sync()

    def close(self) -> None:
        """Release what the store holds of its own (the chunk copies' connections)."""
        while self.on_close:
            self.on_close.pop()()

    def _open_big(self, sha256: str) -> BinaryIO:
        # The first place is asked again last: a migration may have moved the blob out of
        # a later place after the first was asked (it commits the copy, then deletes).
        for place in [*self.places, self.places[0]]:
            found = place.open(sha256)
            if found is not None:
                return found
        raise FileNotFoundError(f"blob {sha256} is neither in the database nor in {self.root}")

    def _row(self, sha256: str, session: Session | None) -> bytes | None:
        if session is None:
            if self.sessions is None:
                return None
            with self.sessions() as own:
                return self._row(sha256, own)
        data = session.scalar(select(Blob.data).where(Blob.sha256 == sha256))
        return bytes(data) if data is not None else None


def build_blob_store(
    storage: StorageConfig, engine: Engine, readers: Callable[[], Session]
) -> BlobStore:
    """The blob store `storage` describes, on the database of `engine`."""
    backend = storage.backend_for(str(engine.url))
    copies = engine
    if backend == "database":
        # Chunk copies commit while the batch that needs them holds its own connection:
        # with a pool of their own, batches filling the main pool can never leave both
        # waiting for each other.
        copies = make_engine(engine.url.render_as_string(hide_password=False))
    chunks = ChunkBlobs(make_sessionmaker(copies), readers)
    store = BlobStore(
        storage.path,
        inline_max=storage.inline_max_bytes,
        fsync=storage.fsync,
        sessions=readers,
        big=chunks if backend == "database" else None,
        also_read=[] if backend == "database" else [chunks],  # what a migration moved
    )
    if copies is not engine:
        store.on_close.append(copies.dispose)
    return store
