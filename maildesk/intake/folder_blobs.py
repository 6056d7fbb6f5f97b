"""Blobs a parser child writes while reading a large message: files in one job folder.

The child has no database and must not file anything in the store itself: a child
that is stopped half way would leave blobs no row refers to, unsynced. So it writes
each blob as `<folder>/<sha256>` and says which; the daemon adopts them into the store
(a hard link: the folder lies inside the store's spool folder) and removes the folder
whatever happened.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from maildesk.intake.blob_writer import BlobWriter, InlineSink, stream_into


class FolderBlobs:
    """A BlobWriter into one folder; `written` lists the SHA-256s of the blobs it holds."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.written: list[str] = []

    def put(self, data: bytes, inline: InlineSink, sha256: str | None = None) -> str:
        return self.put_file(data, sha256)

    def put_file(self, data: bytes, sha256: str | None = None) -> str:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        if digest not in self.written:
            fh, tmp = self.temp_file()
            with fh:
                fh.write(data)
            self.adopt(tmp, digest)
            tmp.unlink()
        return digest

    def put_stream(self, stream: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
        return stream_into(self, stream, chunk)

    def temp_file(self) -> tuple[BinaryIO, Path]:
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix="part-")
        return os.fdopen(fd, "w+b"), Path(tmp)

    def adopt(self, tmp: Path, sha256: str) -> str:
        """Keep `tmp` as the blob `sha256` (a link: the caller still removes `tmp`)."""
        if sha256 not in self.written:
            os.link(tmp, self.folder / sha256)
            self.written.append(sha256)
        return sha256

    def get_file(self, sha256: str) -> bytes:
        if sha256 not in self.written:
            raise FileNotFoundError(f"blob {sha256} was not written in this job")
        return (self.folder / sha256).read_bytes()


@contextmanager
def job_folder(blobs: BlobWriter) -> Iterator[Path]:
    """A new private folder beside `blobs`' spool files (same file system, so its files
    can be adopted by a link), removed with everything in it afterwards."""
    fh, probe = blobs.temp_file()
    fh.close()
    try:
        folder = Path(tempfile.mkdtemp(dir=probe.parent, prefix="job-"))
    finally:
        probe.unlink(missing_ok=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def adopt_all(blobs: BlobWriter, folder: Path, written: list[str]) -> None:
    """File the blobs a child wrote into `folder` in the store (before the folder goes)."""
    for sha256 in written:
        blobs.adopt(folder / sha256, sha256)
