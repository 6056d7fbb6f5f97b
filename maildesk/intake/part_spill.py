"""One big part body streamed into the blob store, decoded on the way (base64, QP, uuencode).

Used by `skeleton` while it cuts a large message: each line of a leaf body goes
through the part's transfer decoder into a spool file that is adopted into the blob
store under its SHA-256, so a 50 MB attachment is never held in memory whole.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from pathlib import Path

from maildesk.intake.blob_writer import BlobWriter
from maildesk.intake.message import StoredPart
from maildesk.intake.mime_parts import decode_uu_line

CHUNK = 1 << 20
_EOL = re.compile(rb"(\r\n|\r|\n)\Z")
_NOT_BASE64 = bytes(b for b in range(256) if not re.match(rb"[A-Za-z0-9+/=]", bytes([b])))


class PartSpill:
    """Decodes a part body as it streams in and writes it to a blob-store temp file."""

    def __init__(self, blobs: BlobWriter, cte: str, limit: int):
        self.blobs = blobs
        self.limit = limit
        self.decoder = decoder_for(cte)
        self.fh, self.tmp = blobs.temp_file()
        self.digest = hashlib.sha256()
        self.size = 0
        self.encoded = 0
        self.over = False
        self.lines: list[bytes] = []
        self.buffered = 0
        self.last = b""  # the newest line, held back: its line end may not belong to the part
        self.head = b""  # the first header block, for the subject of an attached message
        self.in_head = True

    def write(self, line: bytes) -> None:
        if self.in_head:
            self.head += line
            self.in_head = line not in (b"\r\n", b"\n", b"\r") and len(self.head) < 65536
        if self.last:
            self.lines.append(self.last)
            self.buffered += len(self.last)
        self.last = line
        if self.buffered >= CHUNK:
            self._drain()

    def _drain(self) -> None:
        data = b"".join(self.lines)
        self.lines = []
        self.buffered = 0
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        self.encoded += len(data)
        if not self.over:
            self._out(self.decoder.feed(data))

    def _out(self, data: bytes) -> None:
        if not data or self.over:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.over = True
            self.fh.close()
            self.tmp.unlink(missing_ok=True)
            return
        self.digest.update(data)
        self.fh.write(data)

    def abandon(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)

    def finish(self, *, strip_final_eol: bool) -> StoredPart:
        """Flush, file the blob, and say where it is (or that it was too big to keep)."""
        self._drain()
        last = _EOL.sub(b"", self.last) if strip_final_eol else self.last
        self._feed(last)
        if not self.over:
            self._out(self.decoder.finish())
        if self.over:
            return StoredPart(None, max(self.size, self.decoder.estimate(self.encoded)))
        self.fh.close()
        try:
            sha = self.blobs.adopt(self.tmp, self.digest.hexdigest())
        finally:
            Path(self.tmp).unlink(missing_ok=True)
        return StoredPart(sha, self.size)


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""

    def estimate(self, encoded: int) -> int:
        return encoded


class _Base64(_Identity):
    """Streaming base64, lenient as the stdlib: junk skipped, decoding stops at padding."""

    def __init__(self) -> None:
        self.rest = b""
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        data = self.rest + data.translate(None, _NOT_BASE64)
        pad = data.find(b"=")
        if pad >= 0:
            self.done = True
            self.rest = data[:pad]
            return b""
        cut = len(data) - len(data) % 4
        self.rest = data[cut:]
        return binascii.a2b_base64(data[:cut]) if cut else b""

    def finish(self) -> bytes:
        rest, self.rest = self.rest, b""
        cut = len(rest) - len(rest) % 4
        out = binascii.a2b_base64(rest[:cut]) if cut else b""
        tail = rest[cut:]
        if len(tail) >= 2:
            out += binascii.a2b_base64(tail + b"=" * (4 - len(tail)))
        return out

    def estimate(self, encoded: int) -> int:
        return encoded * 3 // 4


class _QuotedPrintable(_Identity):
    """Quoted-printable fed whole lines at a time, so soft line breaks decode right."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        data = self.rest + data
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        self.rest = data[cut:]
        return binascii.a2b_qp(data[:cut]) if cut else b""

    def finish(self) -> bytes:
        rest, self.rest = self.rest, b""
        return binascii.a2b_qp(rest) if rest else b""


class _Uuencode(_QuotedPrintable):
    """uuencode between its `begin` and `end` lines, as email.message._decode_uu reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.state = "before"

    def feed(self, data: bytes) -> bytes:
        data = self.rest + data
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        self.rest = data[cut:]
        return self._lines(data[:cut])

    def finish(self) -> bytes:
        rest, self.rest = self.rest, b""
        return self._lines(rest)

    def _lines(self, data: bytes) -> bytes:
        out = []
        for line in data.splitlines():
            if self.state == "before":
                if line.startswith(b"begin ") and line[6:].partition(b" ")[0].isdigit():
                    self.state = "body"
            elif self.state == "body":
                if line.strip(b" \t\r\n\f") == b"end" or not line:
                    self.state = "after"
                    continue
                decoded = decode_uu_line(line)
                if decoded is None:
                    self.state = "after"
                else:
                    out.append(decoded)
        return b"".join(out)

    def estimate(self, encoded: int) -> int:
        return encoded * 3 // 4


def decoder_for(cte: str) -> _Identity:
    if cte == "base64":
        return _Base64()
    if cte == "quoted-printable":
        return _QuotedPrintable()
    if cte in ("x-uuencode", "uuencode", "uue", "x-uue"):
        return _Uuencode()
    return _Identity()
