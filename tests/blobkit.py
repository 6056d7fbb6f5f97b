"""Helpers for blob-store tests: big messages written to disk, and peak memory of this process."""

from __future__ import annotations

import base64
import gc
import hashlib
import random
from pathlib import Path
from typing import BinaryIO

import pytest

MB = 1024 * 1024
_LINE = 57  # bytes per base64 line


def write_big_message(
    path: Path, size: int, *, seed: int = 1, message_id: str = "<big@example.org>"
) -> str:
    """A message with one `size`-byte random attachment, written without holding it in
    memory; returns the attachment's SHA-256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        fh.write(
            b"From: Big Sender <big@example.org>\r\nTo: support@example.com\r\n"
            b"Subject: Logs attached\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
            + f"Message-ID: {message_id}\r\n".encode()
            + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
            b"--b0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nThe logs.\r\n\r\n"
            b'--b0\r\nContent-Type: application/octet-stream; name="logs.bin"\r\n'
            b'Content-Disposition: attachment; filename="logs.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        left = size
        while left:
            block = rng.randbytes(min(left, _LINE * 20000))
            digest.update(block)
            fh.write(base64.encodebytes(block).replace(b"\n", b"\r\n"))
            left -= len(block)
        fh.write(b"--b0--\r\n")
    return digest.hexdigest()


def stream_digest(fh: BinaryIO) -> tuple[str, int]:
    """(SHA-256, size) of a stream, read 1 MiB at a time."""
    digest, size = hashlib.sha256(), 0
    with fh:
        while block := fh.read(MB):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class PeakMemory:
    """This process's peak RSS over a stretch of code (Linux: VmHWM, reset by clear_refs)."""

    def __enter__(self) -> PeakMemory:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to now
        except OSError:
            pytest.skip("cannot reset the peak RSS here (needs Linux /proc/self/clear_refs)")
        self.baseline = _status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _status("VmHWM")

    @property
    def growth(self) -> int:
        return self.peak - self.baseline
