"""Large messages: big part bodies go straight to the blob store; a small skeleton is parsed.

The stdlib parser holds a message in memory several times over (its lines, the joined
payload, the decoded bytes), so a 50 MB attachment would cost hundreds of MB. For big
messages we walk the MIME structure ourselves, line by line from a file, following
the stdlib parser's rules for boundaries, and cut each leaf body above `spill_bytes`
out into the blob store, decoding base64 or quoted-printable as it streams. What is
left, the skeleton, keeps every header and marks each cut part with
`X-Maildesk-Spilled: <nonce>:<n>`; `parse_message` turns those into attachments.
"""

from __future__ import annotations

import collections
import dataclasses
import email.parser
import email.policy
import re
import secrets
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO

from maildesk.common.errors import ParseError, SkeletonTooLarge
from maildesk.intake.blob_writer import BlobWriter
from maildesk.intake.header_values import decode_header_value
from maildesk.intake.message import SPILL_HEADER, Spilled, StoredPart
from maildesk.intake.mime_parts import MAX_DEPTH
from maildesk.intake.part_spill import PartSpill

CHUNK = 1 << 20
MAX_LINE = 1 << 16
MAX_HEADER_BLOCK = 1 << 20
# The same header-line test as email.feedparser.headerRE, on bytes.
_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]*:|[\t ])")
_EOL = re.compile(rb"(\r\n|\r|\n)\Z")
# Parts of a bounce's report stay in the skeleton like text, so the parser reads them.
_REPORT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/feedback-report",
        "text/rfc822-headers",
        "text/global-headers",
    }
)


@dataclass
class Skeleton:
    """The message with its big bodies cut out, and where those bodies went."""

    data: bytes
    spilled: Spilled
    defects: list[str] = field(default_factory=list)


def cut_skeleton(
    stream: BinaryIO,
    blobs: BlobWriter,
    *,
    spill_bytes: int,
    max_attachment_bytes: int,
    max_skeleton_bytes: int = 32 << 20,
    body_spill_bytes: int = 2 << 20,
) -> Skeleton:
    """Read a message from `stream`, storing leaf bodies over `spill_bytes` as blobs.

    Text bodies (text/plain or text/html, not attachments) are cut only above
    `body_spill_bytes`, so the ticket text stays readable. Raises SkeletonTooLarge
    when what remains would still be bigger than `max_skeleton_bytes`.
    """
    cutter = _Cutter(_Lines(stream), blobs, spill_bytes, body_spill_bytes, max_attachment_bytes)
    cutter.max_skeleton = max_skeleton_bytes
    try:
        cutter.part(is_child=False, default_type="text/plain", depth=0)
    finally:
        if cutter.spill is not None:  # stopped half way: drop the unfinished temp file
            cutter.spill.abandon()
    return Skeleton(bytes(cutter.out), Spilled(cutter.nonce, cutter.parts), cutter.defects)


class _Lines:
    """Lines of a binary stream split as the stdlib parser splits them (CRLF, CR or LF).

    A line longer than MAX_LINE comes out in pieces; only a piece that follows a line
    end can be a boundary or a blank line.
    """

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.queue: collections.deque[bytes] = collections.deque()
        self.partial = b""
        self.eof = False
        self.at_start = True  # the next line returned starts a line

    def readline(self) -> bytes | None:
        while not self.queue:
            if not self._fill():
                return None
        return self.queue.popleft()

    def unread(self, line: bytes) -> None:
        self.queue.appendleft(line)

    def _fill(self) -> bool:
        if self.eof:
            if not self.partial:
                return False
            self.queue.append(self.partial)
            self.partial = b""
            return True
        block = self.stream.read(CHUNK)
        if not block:
            self.eof = True
            return self._fill()
        lines = (self.partial + block).splitlines(keepends=True)
        last = lines[-1]
        # Hold back a line without its end, and a CR that may be half of a CRLF.
        if not last.endswith((b"\n", b"\r")) or last.endswith(b"\r"):
            self.partial = lines.pop()
            if len(self.partial) > MAX_LINE and not self.partial.endswith(b"\r"):
                lines.append(self.partial)
                self.partial = b""
        else:
            self.partial = b""
        self.queue.extend(lines)
        return bool(lines) or self._fill()


def _ends_line(line: bytes) -> bool:
    return line.endswith((b"\n", b"\r"))


class _Cutter:
    def __init__(
        self,
        lines: _Lines,
        blobs: BlobWriter,
        spill_bytes: int,
        body_spill_bytes: int,
        max_attachment_bytes: int,
    ):
        self.lines = lines
        self.blobs = blobs
        self.spill_bytes = spill_bytes
        self.body_spill_bytes = body_spill_bytes
        self.max_attachment_bytes = max_attachment_bytes
        self.max_skeleton = 32 << 20
        self.out = bytearray()
        self.parts: dict[int, StoredPart] = {}
        self.nonce = secrets.token_hex(8)
        self.defects: list[str] = []
        self.boundaries: list[re.Pattern[bytes]] = []  # enclosing multiparts, innermost last
        self.line_start = True  # the next line read starts a line
        self.cur_starts = True  # the line just read started a line
        self.spill: PartSpill | None = None

    # Reading, with the enclosing boundaries acting as end-of-input, as in the stdlib.

    def _next(self) -> bytes | None:
        line = self.lines.readline()
        if line is None:
            return None
        starts = self.line_start
        self.line_start = _ends_line(line)
        self.cur_starts = starts
        if starts and line[:2] == b"--" and any(b.match(line) for b in self.boundaries):
            self._unread(line)
            return None
        return line

    def _unread(self, line: bytes) -> None:
        """Put back a line that started a line (a boundary, or the first body line)."""
        self.lines.unread(line)
        self.line_start = True

    def _emit(self, data: bytes) -> None:
        self.out += data
        if len(self.out) > self.max_skeleton:
            raise SkeletonTooLarge(
                f"the message's headers and text are over {self.max_skeleton >> 20} MB"
            )

    def part(self, *, is_child: bool, default_type: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ParseError(f"MIME nesting deeper than {MAX_DEPTH} levels")
        header_block, blank = self._headers(top=not is_child)
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            header_block
        )
        headers.set_default_type(default_type)
        self._emit(header_block)
        ctype = headers.get_content_type()
        if headers.get_content_maintype() == "multipart" and headers.get_boundary():
            self._emit(blank)
            self._multipart(headers, depth)
            return
        self._leaf(headers, ctype, blank, is_child)

    def _headers(self, *, top: bool) -> tuple[bytes, bytes]:
        block = bytearray()
        first = True
        while (line := self._next()) is not None:
            if first and top and line.startswith(b"From "):
                block += line  # an mbox "From " line; the stdlib keeps it as the unixfrom
                first = False
                continue
            first = False
            if self.cur_starts and line in (b"\r\n", b"\n", b"\r"):
                return bytes(block), line
            if self.cur_starts and not _HEADER_LINE.match(line):
                self._unread(line)
                break
            block += line
            if len(block) > MAX_HEADER_BLOCK:
                raise SkeletonTooLarge("a header block is over 1 MB")
        return bytes(block), b""

    def _multipart(self, headers: Message, depth: int) -> None:
        boundary = headers.get_boundary() or ""
        try:
            raw_boundary = boundary.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw_boundary = boundary.encode("utf-8", "replace")
        separator = re.escape(b"--" + raw_boundary)
        own = re.compile(separator + rb"(--)?[ \t]*(\r\n|\r|\n)?\Z")
        child_type = "message/rfc822" if headers.get_content_type() == "multipart/digest" else ""
        in_preamble = True
        while (line := self._next()) is not None:
            match = own.match(line) if self.cur_starts else None
            if match is None:
                self._emit(line)  # preamble, or stray text the stdlib also keeps there
                continue
            self._emit(line)
            if match.group(1):  # the close boundary: the rest is epilogue
                while (rest := self._next()) is not None:
                    self._emit(rest)
                return
            in_preamble = False
            # Extra boundary lines right after one another make no parts (as in the stdlib).
            while (again := self._next()) is not None:
                if not own.match(again):
                    self._unread(again)
                    break
                self._emit(again)
            self.boundaries.append(own)
            try:
                self.part(is_child=True, default_type=child_type or "text/plain", depth=depth + 1)
            finally:
                self.boundaries.pop()
        if in_preamble:
            self.defects.append("multipart start boundary not found")

    def _leaf(self, headers: Message, ctype: str, blank: bytes, is_child: bool) -> None:
        is_text_body = ctype in ("text/plain", "text/html") and not _names_a_file(headers)
        keep = is_text_body or ctype in _REPORT_TYPES
        threshold = self.body_spill_bytes if keep else self.spill_bytes
        buffered: list[bytes] = []
        size = 0
        spill: PartSpill | None = None
        while (line := self._next()) is not None:
            if spill is not None:
                spill.write(line)
                continue
            buffered.append(line)
            size += len(line)
            if size > threshold:
                cte = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
                if headers.get_content_maintype() in ("message", "multipart"):
                    cte = ""  # an attached message is kept as it is
                spill = self.spill = PartSpill(self.blobs, cte, self.max_attachment_bytes)
                for held in buffered:
                    spill.write(held)
                buffered = []
        if spill is None:
            self._emit(blank)
            for held in buffered:
                self._emit(held)
            return
        index = len(self.parts)
        stored = spill.finish(strip_final_eol=is_child)
        if ctype == "message/rfc822":
            stored = dataclasses.replace(stored, name_hint=_subject(spill.head), head=spill.head)
        self.parts[index] = stored
        self.spill = None
        if self.out and not _ends_line(bytes(self.out[-1:])):
            self._emit(b"\r\n")
        # The marker goes last among the part's headers; the body is left empty.
        self._emit(f"{SPILL_HEADER}: {self.nonce}:{index}\r\n\r\n".encode())
        if is_child:
            self._emit(b"\r\n")  # the line end before the next boundary belongs to it


def _subject(head: bytes) -> str:
    try:
        parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
        return decode_header_value(parsed.get("Subject", ""))
    except Exception:
        return ""


def _names_a_file(headers: Message) -> bool:
    """An attachment rather than the message text (as parse._Bodies decides)."""
    try:
        disposition = (headers.get_content_disposition() or "").lower()
        return disposition == "attachment" or bool(
            headers.get_filename() or headers.get_param("name")
        )
    except Exception:
        return True
