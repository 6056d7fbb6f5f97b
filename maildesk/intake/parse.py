"""Raw bytes -> ParsedMessage: headers decoded, bodies in text, attachments as bytes.

The stdlib parser (compat32, as mail-parser uses it) builds the tree; mail-parser's
helpers split addresses and read dates. Encoded words and bodies are decoded here:
mail-parser drops undecodable header text and returns 7-bit charsets such as
ISO-2022-JP undecoded. Everything that comes out is safe to store: no NUL bytes, no
lone surrogates, bounded lengths, addresses that are plain `local@domain`.
"""

from __future__ import annotations

import binascii
import email
import email.parser
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message

from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses

from maildesk.common.errors import ParseError
from maildesk.intake.charsets import ENCODED_WORD, decode_bytes, decode_encoded_words
from maildesk.intake.html_text import html_to_text, sanitize_html
from maildesk.intake.tnef import TnefError, parse_tnef

_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_ID_RE = re.compile(r"<([^<>\s\x00-\x1f\x7f]+)>")
_BARE_ID_RE = re.compile(r"^[^<>\s\x00-\x1f\x7f]+$")
_WS_RE = re.compile(r"\s+")
_SURROGATES = re.compile(r"[\udc80-\udcff]")
_ANY_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ADDR_RE = re.compile(
    r"^[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]{1,64}@[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]{1,253}$"
)
_UU_BLOCK = re.compile(rb"(?ms)^begin [0-7]{3,4} ([^\r\n]+)\r?\n(.*?)^end[ \t\r]*$")
_GUESS_BOUNDARY = re.compile(r"(?m)^--([^\s]{1,200})[ \t\r]*$")

SPILL_HEADER = "X-Maildesk-Spilled"
MAX_SUBJECT = 1000
MAX_NAME = 200
MAX_ADDRESSES = 100
MAX_IDS = 100
MAX_ID_LENGTH = 900
MAX_HEADERS = 2000
MAX_DEPTH = 100


@dataclass(frozen=True)
class Address:
    """A mailbox: display name and lower-cased address."""

    name: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True)
class ParsedAttachment:
    """One attached file: its bytes, or the hash of bytes already in the blob store."""

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False
    blob: str | None = None  # SHA-256 of content written to the blob store while parsing
    blob_size: int = 0

    @property
    def size(self) -> int:
        return self.blob_size if self.blob else len(self.data)

    @property
    def sha256(self) -> str:
        return self.blob or hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class DroppedAttachment:
    """An attachment whose content was not kept, and why."""

    filename: str
    content_type: str
    size: int
    reason: str


@dataclass(frozen=True)
class ParseLimits:
    """Size limits applied while parsing."""

    max_attachment_bytes: int = 25 * 1024 * 1024
    # A text body bigger than this is kept as an attachment, not as ticket text.
    max_body_bytes: int = 2 * 1024 * 1024


@dataclass(frozen=True)
class StoredPart:
    """A part body the large-message reader already decoded into the blob store."""

    sha256: str | None  # None: not kept, it was over the attachment limit
    size: int
    name_hint: str = ""  # for an attached message: its subject


@dataclass(frozen=True)
class Spilled:
    """Part bodies cut out of a skeleton message; `nonce` makes the markers unforgeable."""

    nonce: str
    parts: dict[int, StoredPart]

    def lookup(self, part: Message) -> StoredPart | None:
        value = str(part.get(SPILL_HEADER, ""))
        nonce, _, index = value.strip().partition(":")
        if nonce != self.nonce or not index.isdigit():
            return None
        return self.parts.get(int(index))


@dataclass
class ParsedMessage:
    """Everything the deciding steps need to know about one incoming message."""

    sha256: str
    size: int
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    sender: Address | None
    reply_to: list[Address]
    to: list[Address]
    cc: list[Address]
    date: datetime | None
    text: str
    html: str | None
    attachments: list[ParsedAttachment]
    headers: list[tuple[str, str]]
    content_type: str
    defects: list[str] = field(default_factory=list)
    dropped: list[DroppedAttachment] = field(default_factory=list)
    # Why only the headers were read (the message was over the size limit), or "".
    oversized: str = ""
    _header_index: dict[str, list[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def dedup_key(self) -> str:
        """Message-ID when present, otherwise the content hash."""
        return f"mid:{self.message_id}" if self.message_id else f"sha256:{self.sha256}"

    @property
    def from_addr(self) -> str:
        return self.sender.address if self.sender else ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), decoded."""
        values = self._by_name().get(name.lower())
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name`, decoded."""
        return list(self._by_name().get(name.lower(), ()))

    def _by_name(self) -> dict[str, list[str]]:
        # Screening, threading and rules ask for dozens of headers per message.
        if self._header_index is None:
            index: dict[str, list[str]] = {}
            for name, value in self.headers:
                index.setdefault(name.lower(), []).append(value)
            self._header_index = index
        return self._header_index

    @property
    def recipients(self) -> list[Address]:
        return [*self.to, *self.cc]


def parse_message(
    raw: bytes, *, limits: ParseLimits | None = None, spilled: Spilled | None = None
) -> ParsedMessage:
    """Parse raw RFC 5322 bytes; raise ParseError only when nothing usable is there."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark some tools write first
        raw = raw[3:]
    if not raw.strip():
        raise ParseError("empty message: no headers and no body")
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        raw_items = list(msg.raw_items())
    except RecursionError:
        raise ParseError("MIME nesting too deep to parse") from None
    if spilled is not None:
        raw_items = [(n, v) for n, v in raw_items if n.lower() != SPILL_HEADER.lower()]
    if not raw_items:
        raise ParseError("no headers found: this is not an email message")
    raw_items = raw_items[:MAX_HEADERS]
    headers = [(_scrub(str(name))[:200], decode_header_value(value)) for name, value in raw_items]
    first: dict[str, str] = {}
    undecoded: dict[str, str] = {}  # address and id headers are split before words are decoded
    for (name, value), (_, raw_value) in zip(headers, raw_items, strict=True):
        first.setdefault(name.lower(), value)
        undecoded.setdefault(name.lower(), _scrub(_unfold_8bit(str(raw_value))))
    body = _Bodies(limits or ParseLimits(), spilled)
    try:
        body.walk(msg)
    except RecursionError:
        raise ParseError("MIME nesting too deep to parse") from None
    html = sanitize_html("\n".join(body.html)) if body.html else None
    text = "\n".join(body.text) if body.text else (html_to_text(html) if html else "")
    return ParsedMessage(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=_first_id(undecoded.get("message-id")),
        in_reply_to=_ids(undecoded.get("in-reply-to")),
        references=_ids(undecoded.get("references")),
        subject=_clip(_WS_RE.sub(" ", first.get("subject", "")).strip(), MAX_SUBJECT),
        sender=_sender(undecoded, body.defects),
        reply_to=_addresses(undecoded.get("reply-to"), body.defects),
        to=_addresses(undecoded.get("to"), body.defects),
        cc=_addresses(undecoded.get("cc"), body.defects),
        date=_date(undecoded.get("date"), body.defects),
        text=_scrub(text),
        html=_scrub(html) if html is not None else None,
        attachments=body.attachments,
        headers=headers,
        content_type=msg.get_content_type(),
        defects=[type(d).__name__ for d in msg.defects] + body.defects,
        dropped=body.dropped,
    )


def _scrub(text: str) -> str:
    """Text any database accepts: no NUL characters and no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _ANY_SURROGATE.search(text):
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unfold_8bit(text: str) -> str:
    if _SURROGATES.search(text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), None)
    return text.replace("\r", "").replace("\n", "")


def decode_header_value(value: object) -> str:
    """A header value as text: raw 8-bit bytes and RFC 2047 encoded words decoded."""
    text = _unfold_8bit(str(value))
    if "=?" in text:
        text = decode_encoded_words(text)
    return _scrub(text)


class _Bodies:
    """Walks a MIME tree once, sorting leaves into text, HTML and attachments."""

    def __init__(self, limits: ParseLimits, spilled: Spilled | None) -> None:
        self.limits = limits
        self.spilled = spilled
        self.text: list[str] = []
        self.html: list[str] = []
        self.attachments: list[ParsedAttachment] = []
        self.dropped: list[DroppedAttachment] = []
        self.defects: list[str] = []

    def walk(self, part: Message, in_alternative: bool = False, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ParseError(f"MIME nesting deeper than {MAX_DEPTH} levels")
        ctype = part.get_content_type()
        if not _CONTENT_TYPE.match(ctype):
            ctype = "text/plain"  # "/", "text" and other junk: read it as text, as clients do
        stored = self.spilled.lookup(part) if self.spilled else None
        if stored is not None:
            self._stored_leaf(part, ctype, stored)
            return
        if ctype == "message/rfc822" or (ctype.startswith("message/") and part.is_multipart()):
            self._attach_message(part)
            return
        if ctype.startswith("multipart/") and not part.is_multipart():
            recovered = _recover_multipart(part, ctype)
            if recovered is None:
                self.defects.append("multipart without usable boundary: read as text")
                self._leaf(part, "text/plain")
                return
            self.defects.append("multipart boundary guessed from the body")
            part = recovered
        if part.is_multipart():
            payload = part.get_payload()
            subparts = payload if isinstance(payload, list) else []
            if ctype == "multipart/alternative":
                self._walk_alternative(subparts, depth)
            else:
                for sub in subparts:
                    self.walk(sub, in_alternative, depth + 1)
            return
        self._leaf(part, ctype)

    def _walk_alternative(self, subparts: list[Message], depth: int) -> None:
        # Keep one plain and one HTML rendering, never both plain versions twice.
        before_text, before_html = len(self.text), len(self.html)
        for sub in subparts:
            if sub.get_content_type() == "text/plain" and len(self.text) > before_text:
                continue
            if sub.get_content_type() == "text/html" and len(self.html) > before_html:
                continue
            self.walk(sub, True, depth + 1)

    def _leaf(self, part: Message, ctype: str) -> None:
        disposition = _disposition(part)
        filename = _filename(part)
        data = _payload_bytes(part)
        is_body = ctype in ("text/plain", "text/html") and disposition != "attachment"
        if is_body and not filename and len(data) <= self.limits.max_body_bytes:
            text = decode_bytes(data, part.get_content_charset(None))
            if ctype == "text/plain" and "begin " in text:
                text = self._extract_uuencoded(text)
            (self.text if ctype == "text/plain" else self.html).append(text)
            return
        if is_body and not filename:
            filename = "message.txt" if ctype == "text/plain" else "message.html"
            self.text.append(
                f"[The message text is {_size(len(data))}; it is attached as {filename}.]"
            )
        if not data and not filename:
            return
        is_tnef = ctype == "application/ms-tnef" or filename.lower() == "winmail.dat"
        if is_tnef and self._unpack_tnef(data):
            return
        self._add(filename or _default_name(ctype, len(self.attachments) + 1), ctype, data, part)

    def _add(self, filename: str, ctype: str, data: bytes, part: Message | None = None) -> None:
        if len(data) > self.limits.max_attachment_bytes:
            self._drop(filename, ctype, len(data))
            return
        content_id = inline = None
        if part is not None:
            content_id = _first_id(decode_header_value(part.get("Content-ID", "")) or None)
            inline = _disposition(part) == "inline"
        self.attachments.append(
            ParsedAttachment(
                filename=_scrub(filename),
                content_type=ctype,
                data=data,
                content_id=content_id,
                inline=bool(inline),
            )
        )

    def _drop(self, filename: str, ctype: str, size: int) -> None:
        limit = _size(self.limits.max_attachment_bytes)
        reason = f"larger than the {limit} attachment limit"
        self.dropped.append(DroppedAttachment(_scrub(filename), ctype, size, reason))

    def _stored_leaf(self, part: Message, ctype: str, stored: StoredPart) -> None:
        """A part whose body the large-message reader already put in the blob store."""
        filename = _filename(part)
        if not filename:
            if ctype in ("text/plain", "text/html") and _disposition(part) != "attachment":
                filename = "message.txt" if ctype == "text/plain" else "message.html"
                self.text.append(_body_note(stored.size, filename))
            elif ctype == "message/delivery-status":
                filename = "delivery-status.txt"
            elif ctype.startswith("message/"):
                filename = f"{stored.name_hint[:60] or 'message'}.eml"
            else:
                filename = _default_name(ctype, len(self.attachments) + 1)
        if stored.sha256 is None:
            if self.text and self.text[-1] == _body_note(stored.size, filename):
                self.text[-1] = f"[The message text is {_size(stored.size)}; too large to keep.]"
            self._drop(filename, ctype, stored.size)
            return
        self.attachments.append(
            ParsedAttachment(
                filename=filename,
                content_type=ctype,
                data=b"",
                content_id=_first_id(decode_header_value(part.get("Content-ID", "")) or None),
                inline=_disposition(part) == "inline",
                blob=stored.sha256,
                blob_size=stored.size,
            )
        )

    def _unpack_tnef(self, data: bytes) -> bool:
        """Add the files inside a winmail.dat; False keeps the .dat itself as well."""
        try:
            content = parse_tnef(data)
        except TnefError:
            self.defects.append("winmail.dat is not valid TNEF: kept as it is")
            return False
        for index, item in enumerate(content.files, 1):
            self._add(item.name or f"winmail-{index}.bin", item.content_type, item.data)
        if content.body and not self.text:
            self.text.append(_scrub(content.body))
        if not content.complete:
            self.defects.append("winmail.dat is damaged: kept as it is")
            return False
        return bool(content.files or content.body)

    def _extract_uuencoded(self, text: str) -> str:
        """Old mailers paste uuencoded files into the text; take them out as attachments."""
        raw = text.encode("utf-8", "surrogateescape")

        def take(match: re.Match[bytes]) -> bytes:
            name = match.group(1).decode("utf-8", "replace").strip()
            self._add(name, "application/octet-stream", _decode_uu_lines(match.group(2)))
            return f"[attachment: {name}]".encode()

        cleaned = _UU_BLOCK.sub(take, raw)
        return text if cleaned == raw else cleaned.decode("utf-8", "replace")

    def _attach_message(self, part: Message) -> None:
        inner = part.get_payload()
        if part.get_content_type() == "message/delivery-status" and isinstance(inner, list):
            blocks = [_message_bytes(block) for block in inner]
            self._add("delivery-status.txt", "message/delivery-status", b"\n".join(blocks))
            return
        if isinstance(inner, list) and inner:
            data = _message_bytes(inner[0])
            subject = decode_header_value(inner[0].get("Subject", "")) or "message"
        else:
            data = _payload_bytes(part)
            subject = "message"
        name = _filename(part) or f"{subject[:60]}.eml"
        self._add(name, "message/rfc822", data)


def _message_bytes(message: Message) -> bytes:
    try:
        return message.as_bytes(policy=email.policy.compat32)
    except Exception:  # a message the generator cannot write back: keep its text
        return str(message).encode("utf-8", "surrogateescape")


def _recover_multipart(part: Message, ctype: str) -> Message | None:
    """A multipart whose declared boundary never appears: try the first `--x` line."""
    body = part.get_payload()
    if not isinstance(body, str):
        return None
    match = _GUESS_BOUNDARY.search(body[:65536])
    if match is None:
        return None
    boundary = match.group(1).removesuffix("--")
    head = f'Content-Type: {ctype}; boundary="{boundary}"\n\n'
    recovered = email.parser.Parser(policy=email.policy.compat32).parsestr(head + body)
    return recovered if recovered.is_multipart() else None


def _body_note(size: int, filename: str) -> str:
    return f"[The message text is {_size(size)}; it is attached as {filename}.]"


def decode_uu_line(line: bytes) -> bytes | None:
    """One uuencoded line as bytes, or None when it is not one."""
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        # Workaround for broken uuencoders by /Fredrik Lundh (as the stdlib does).
        nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
        try:
            return binascii.a2b_uu(line[:nbytes])
        except binascii.Error:
            return None


def _decode_uu_lines(block: bytes) -> bytes:
    out = []
    for line in block.splitlines():
        if not line.strip():
            continue
        decoded = decode_uu_line(line)
        if decoded is None:
            break
        out.append(decoded)
    return b"".join(out)


def _disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def _size(n: int) -> str:
    """A size as people read it: 812 bytes, 3.4 MB."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


human_size = _size


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # the stdlib raises assorted errors on broken encodings
        data = None
    if data is None:
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        try:
            name = part.get_param("name")
        except Exception:
            name = None
        if isinstance(name, tuple):  # RFC 2231 value the stdlib left undecoded
            try:
                name = email.utils.collapse_rfc2231_value(name)
            except Exception:
                name = str(name[2])
    return decode_header_value(name) if name else ""


def _default_name(ctype: str, index: int) -> str:
    if ctype.startswith("text/") and ctype not in ("text/html", "text/calendar"):
        return f"attachment-{index}.txt"
    ext = {
        "text/plain": "txt",
        "text/html": "html",
        "text/calendar": "ics",
        "application/pdf": "pdf",
        "image/png": "png",
        "image/jpeg": "jpg",
        "image/gif": "gif",
        "application/ms-tnef": "dat",
        "message/rfc822": "eml",
    }.get(ctype, "bin")
    return f"attachment-{index}.{ext}"


def _ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _ID_RE.findall(value)
    if not found and _BARE_ID_RE.match(value.strip()):
        found = [value.strip()]  # a bare id without angle brackets, as some mailers send
    seen: dict[str, None] = {}
    for item in found:
        if len(item) <= MAX_ID_LENGTH:
            seen.setdefault(item, None)
    return list(seen)[:MAX_IDS]


def _first_id(value: str | None) -> str | None:
    ids = _ids(value)
    return ids[0] if ids else None


def _addresses(value: str | None, defects: list[str] | None = None) -> list[Address]:
    if not value:
        return []
    result = []
    # Encoded words are atoms: a ":" or "," hidden in one must not split the header.
    words: list[str] = []

    def stash(match: re.Match[str]) -> str:
        words.append(match.group(0))
        return f'"mdew{len(words) - 1}x"'

    value = ENCODED_WORD.sub(stash, value)
    try:
        pairs = _simple_addresses(value) or get_addresses(value, decode_names=False)
    except Exception:
        pairs = []
        if defects is not None:
            defects.append("unreadable address header")
    for name, addr in pairs:
        addr = addr.strip().lower()
        if not addr:
            continue
        if len(addr) > 254 or not _ADDR_RE.match(addr):
            if defects is not None and "@" in addr:
                defects.append("invalid address skipped")
            continue
        if len(result) >= MAX_ADDRESSES:
            if defects is not None:
                defects.append(f"more than {MAX_ADDRESSES} addresses: the rest skipped")
            break
        name = re.sub(r"mdew(\d+)x", lambda m: words[int(m.group(1))], name) if words else name
        clean_name = _clip(_WS_RE.sub(" ", decode_header_value(name)).strip(), MAX_NAME)
        result.append(Address(clean_name, addr))
    return result


def _simple_addresses(value: str) -> list[tuple[str, str]]:
    """The stdlib's parse of a plain header, or [] to leave it to mail-parser's recovering
    parser (ten times slower, so only unusual headers pay for it)."""
    if '"' in value or "\\" in value or "(" in value:
        return []
    try:
        pairs = email.utils.getaddresses([value], strict=True)  # type: ignore[call-arg]
    except TypeError:  # strict= (the CVE-2023-27043 fix) exists only in newer releases
        pairs = email.utils.getaddresses([value])
    if pairs and all(addr.count("@") == 1 and _ADDR_RE.match(addr.lower()) for _, addr in pairs):
        return pairs
    return []


def _sender(headers: dict[str, str], defects: list[str]) -> Address | None:
    """From, else Sender, Reply-To or the envelope sender (Return-Path)."""
    for name in ("from", "sender", "reply-to", "return-path"):
        found = _addresses(headers.get(name), defects)
        if found:
            if name != "from":
                defects.append(f"no usable From: sender taken from {name.title()}")
            return found[0]
    return None


def _date(value: str | None, defects: list[str] | None = None) -> datetime | None:
    if not value:
        return None
    try:
        result = parse_mail_date(value).value
    except Exception:
        return None
    if result is None:
        return None
    try:
        result = result if result.tzinfo else result.replace(tzinfo=UTC)
        result = result.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    if not 1970 <= result.year <= 2200:
        if defects is not None:
            defects.append(f"implausible Date header ({result.year}) ignored")
        return None
    return result
