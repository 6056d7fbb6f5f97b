"""Content-addressed storage for raw messages and attachments.

Everything is stored under its SHA-256, so the same attachment sent twice is stored
once and a name chosen by a sender never becomes a path. Blobs up to a size limit go
into the `blobs` table in the same transaction as the rows that point at them (fast,
atomic, one backup); bigger ones are written as files `root/ab/<sha256>` (atomic temp
file + rename, flushed to disk before the transaction that refers to them commits).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from maildesk.intake.blob_writer import InlineSink
from maildesk.store.models import Blob

__all__ = ["BlobStore", "InlineSink", "insert_blobs"]


class BlobStore:
    """Puts bytes in the database or in files by size; gets them back by SHA-256."""

    def __init__(
        self,
        root: Path,
        *,
        inline_max: int = 1024 * 1024,
        fsync: bool = True,
        sessions: Callable[[], Session] | None = None,
    ):
        self.root = Path(root)
        self.sessions = sessions  # for reads made outside a caller's transaction
        self.inline_max = inline_max
        self.fsync = fsync
        self._unsynced: list[Path] = []
        self._dirs: set[Path] = set()

    def put(self, data: bytes, inline: InlineSink, sha256: str | None = None) -> str:
        """Store `data`: small ones through `inline` (a DB row), big ones as a file."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        if len(data) <= self.inline_max:
            inline(digest, data)
        else:
            self._write_file(digest, data)
        return digest

    def put_file(self, data: bytes, sha256: str | None = None) -> str:
        """Store `data` as a file whatever its size (for parts spilled while parsing)."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        self._write_file(digest, data)
        return digest

    def put_stream(self, stream: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
        """Store a stream as a file without holding it in memory; return (SHA-256, size)."""
        fh, tmp = self.temp_file()
        digest, size = hashlib.sha256(), 0
        try:
            with fh:
                while block := stream.read(chunk):
                    digest.update(block)
                    size += len(block)
                    fh.write(block)
            self.adopt(tmp, digest.hexdigest())
        finally:
            tmp.unlink(missing_ok=True)
        return digest.hexdigest(), size

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """A new temporary file inside the store (same filesystem, so adopt() is cheap)."""
        folder = self.root / ".tmp"
        self._ensure_dir(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="spool-")
        return os.fdopen(fd, "w+b"), Path(tmp)

    def adopt(self, tmp: Path, sha256: str) -> str:
        """File the finished temporary file `tmp` under `sha256`; `tmp` stays for the caller.

        A hard link, not a rename: the caller may still read `tmp` (to quarantine it or
        parse it again) and removes it when done.
        """
        path = self.path_for(sha256)
        if path.exists():
            return sha256
        self._ensure_dir(path.parent)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return sha256
        except OSError:  # no hard links here: copy through a temp name, then rename
            with tmp.open("rb") as src:
                fh, copy = self.temp_file()
                with fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                os.replace(copy, path)
        self._unsynced.append(path)
        return sha256

    def get(self, sha256: str, session: Session | None = None) -> bytes:
        """The stored bytes; FileNotFoundError when neither the database nor a file has them."""
        data = self._row(sha256, session)
        if data is not None:
            return data
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str, session: Session | None = None) -> bool:
        return self._row(sha256, session) is not None or self.path_for(sha256).exists()

    def _row(self, sha256: str, session: Session | None) -> bytes | None:
        if session is None:
            if self.sessions is None:
                return None
            with self.sessions() as own:
                return self._row(sha256, own)
        data = session.scalar(select(Blob.data).where(Blob.sha256 == sha256))
        return bytes(data) if data is not None else None

    def open(self, sha256: str, session: Session | None = None) -> BinaryIO:
        """The stored bytes as a file object: from the database, or the file itself."""
        data = self._row(sha256, session)
        if data is not None:
            return io.BytesIO(data)
        return self.path_for(sha256).open("rb")

    def get_file(self, sha256: str) -> bytes:
        """The bytes of a blob stored as a file (spilled parts)."""
        return self.path_for(sha256).read_bytes()

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def sync(self) -> None:
        """Flush files written since the last sync to disk; call before committing rows.

        One syncfs() for the whole batch where Linux has it, else one fsync per file.
        """
        # Taken before syncing: a file that a read-ahead thread adds meanwhile stays listed
        # for the next sync rather than being cleared unsynced.
        written, self._unsynced = self._unsynced, []
        if self.fsync and written and not _syncfs(self.root):
            for path in written:
                _fsync_path(path)
            for directory in {p.parent for p in written}:
                _fsync_path(directory)  # the renames themselves must survive a power cut

    def _write_file(self, digest: str, data: bytes) -> None:
        path = self.path_for(digest)
        if path.exists():
            return
        self._ensure_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._unsynced.append(path)

    def _ensure_dir(self, directory: Path) -> None:
        """Make a store folder (and the store itself) if missing, private to us (0700):
        the files hold mail. Files are private already (mkstemp makes them 0600)."""
        if directory not in self._dirs:
            for folder in (self.root, directory):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._dirs.add(directory)


def insert_blobs(session: Session, blobs: dict[str, bytes]) -> None:
    """Insert blob rows, skipping those already stored (same hash, same bytes)."""
    if not blobs:
        return
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    rows = [{"sha256": sha, "size": len(data), "data": data} for sha, data in blobs.items()]
    statement = module.insert(Blob).on_conflict_do_nothing(index_elements=["sha256"])
    if dialect not in ("postgresql", "sqlite"):
        statement = insert(Blob)  # other databases: plain insert (duplicates were filtered)
    session.execute(statement, rows)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_HAS_SYNCFS = hasattr(_LIBC, "syncfs")


def _syncfs(path: Path) -> bool:
    """Flush the whole file system holding `path` in one call (Linux); False if unavailable."""
    if not _HAS_SYNCFS:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return _LIBC.syncfs(fd) == 0
    finally:
        os.close(fd)
