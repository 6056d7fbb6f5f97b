"""Content-addressed file storage for raw messages and attachments.

Files live under their SHA-256, so the same attachment sent twice is stored once and a
name chosen by a sender never becomes a path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO


class BlobStore:
    """Stores bytes under `root/ab/cd/<sha256>`; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path, *, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self._unsynced: list[Path] = []

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store `data` (if not there yet) and return its SHA-256."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._unsynced.append(path)
        return digest

    def put_stream(self, stream: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
        """Store a stream without holding it in memory; return (SHA-256, size)."""
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
        folder.mkdir(parents=True, exist_ok=True)
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
        path.parent.mkdir(parents=True, exist_ok=True)
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

    def get(self, sha256: str) -> bytes:
        """The stored bytes; FileNotFoundError when missing."""
        return self.path_for(sha256).read_bytes()

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def sync(self) -> None:
        """Flush files written since the last sync to disk; call before committing rows."""
        if self.fsync:
            for path in self._unsynced:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._unsynced.clear()
