"""Blobs as files `root/ab/<sha256>`: the `files` backend, and the spool for big messages.

Files are written atomically (temp file + rename) and flushed to disk by `sync()` before
the transaction that refers to them commits. Spool files (`root/.tmp`) live here whatever
the backend: they are local scratch space while a big message is read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_HEX = frozenset("0123456789abcdef")


class FileBlobs:
    """Content-addressed files under `root`."""

    def __init__(self, root: Path, *, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self._unsynced: list[Path] = []
        self._dirs: set[Path] = set()

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """A new temporary file inside the store (same filesystem, so adopt() is cheap)."""
        folder = self.root / ".tmp"
        self._ensure_dir(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="spool-")
        return os.fdopen(fd, "w+b"), Path(tmp)

    def adopt(self, tmp: Path, sha256: str) -> None:
        """File the finished temporary file `tmp` under `sha256`; `tmp` stays for the caller.

        A hard link, not a rename: the caller may still read `tmp` (to quarantine it or
        parse it again) and removes it when done.
        """
        path = self.path_for(sha256)
        if path.exists():
            return
        self._ensure_dir(path.parent)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
        except OSError:  # no hard links here: copy through a temp name, then rename
            with tmp.open("rb") as src:
                fh, copy = self.temp_file()
                with fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                os.replace(copy, path)
        self._unsynced.append(path)

    def write(self, data: bytes, sha256: str) -> None:
        """Store `data` under `sha256` (nothing to do if that file exists)."""
        path = self.path_for(sha256)
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

    def open(self, sha256: str) -> BinaryIO | None:
        """The file, opened for reading; None when there is none."""
        try:
            return self.path_for(sha256).open("rb")
        except FileNotFoundError:
            return None

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not _HEX.issuperset(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def stored(self) -> Iterator[tuple[str, Path]]:
        """Every blob file as (sha256, path); temp and stray files are left out."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not _HEX.issuperset(folder.name) or not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                name = path.name
                if len(name) == 64 and name.startswith(folder.name) and _HEX.issuperset(name):
                    yield name, path

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

    def _ensure_dir(self, directory: Path) -> None:
        """Make a store folder (and the store itself) if missing, private to us (0700):
        the files hold mail. Files are private already (mkstemp makes them 0600)."""
        if directory not in self._dirs:
            for folder in (self.root, directory):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._dirs.add(directory)


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
