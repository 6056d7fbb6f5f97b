"""Raw bytes -> ParsedMessage: headers decoded, bodies in text, attachments as bytes.

The stdlib parser (compat32, as mail-parser uses it) builds the tree; mail-parser's
helpers decode addresses, dates and encoded words. Bodies are decoded here because
mail-parser returns 7-bit charsets such as ISO-2022-JP undecoded.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message

from mailparser.dates import parse_mail_date
from mailparser.utils import decode_header_part, get_addresses

from maildesk.errors import ParseError
from maildesk.htmltext import html_to_text, sanitize_html

_ID_RE = re.compile(r"<([^<>\s]+)>")
_WS_RE = re.compile(r"\s+")
_SURROGATES = re.compile(r"[\udc80-\udcff]")


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
    """One attached file, decoded to its bytes."""

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


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

    @property
    def dedup_key(self) -> str:
        """Message-ID when present, otherwise the content hash."""
        return f"mid:{self.message_id}" if self.message_id else f"sha256:{self.sha256}"

    @property
    def from_addr(self) -> str:
        return self.sender.address if self.sender else ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), decoded."""
        lname = name.lower()
        return next((v for n, v in self.headers if n.lower() == lname), None)

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name`, decoded."""
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    @property
    def recipients(self) -> list[Address]:
        return [*self.to, *self.cc]


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 bytes; raise ParseError only when nothing usable is there."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        raise ParseError("empty message: no headers and no body")
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        raise ParseError("MIME nesting too deep to parse") from None
    raw_items = list(msg.raw_items())
    headers = [(name, decode_header_value(value)) for name, value in raw_items]
    if not headers:
        raise ParseError("no headers found: this is not an email message")
    first: dict[str, str] = {}
    undecoded: dict[str, str] = {}  # address headers are split before words are decoded
    for (name, value), (_, raw_value) in zip(headers, raw_items, strict=True):
        first.setdefault(name.lower(), value)
        undecoded.setdefault(name.lower(), _unfold_8bit(str(raw_value)))
    body = _Bodies()
    try:
        body.walk(msg)
    except RecursionError:
        raise ParseError("MIME nesting too deep to parse") from None
    html = sanitize_html("\n".join(body.html)) if body.html else None
    text = "\n".join(body.text) if body.text else (html_to_text(html) if html else "")
    return ParsedMessage(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=_first_id(first.get("message-id")),
        in_reply_to=_ids(first.get("in-reply-to")),
        references=_ids(first.get("references")),
        subject=_WS_RE.sub(" ", first.get("subject", "")).strip(),
        sender=_first_address(undecoded.get("from")) or _first_address(undecoded.get("sender")),
        reply_to=_addresses(undecoded.get("reply-to")),
        to=_addresses(undecoded.get("to")),
        cc=_addresses(undecoded.get("cc")),
        date=_date(undecoded.get("date")),
        text=text,
        html=html,
        attachments=body.attachments,
        headers=headers,
        content_type=msg.get_content_type(),
        defects=[type(d).__name__ for d in msg.defects] + body.defects,
    )


def _unfold_8bit(text: str) -> str:
    if _SURROGATES.search(text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), None)
    return text.replace("\r", "").replace("\n", "")


def decode_header_value(value: object) -> str:
    """A header value as text: raw 8-bit bytes and RFC 2047 encoded words decoded."""
    text = _unfold_8bit(str(value))
    if "=?" in text:
        text = decode_header_part(text)
    return text.replace("\x00", "")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode text in its declared charset, falling back to UTF-8, then Windows-1252."""
    for candidate in (charset, "utf-8", "cp1252"):
        if not candidate:
            continue
        try:
            return data.decode(_charset_alias(candidate))
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", "replace")


def _charset_alias(charset: str) -> str:
    name = charset.strip().strip('"').lower()
    # Mailers label Windows code pages with the ISO name, and "unknown-8bit" is no charset.
    return {
        "iso-8859-1": "cp1252",
        "latin1": "cp1252",
        "us-ascii": "utf-8",
        "ascii": "utf-8",
        "unknown-8bit": "utf-8",
        "x-unknown": "utf-8",
        "ks_c_5601-1987": "cp949",
        "gb2312": "gb18030",
        "gbk": "gb18030",
    }.get(name, name)


class _Bodies:
    """Walks a MIME tree once, sorting leaves into text, HTML and attachments."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.html: list[str] = []
        self.attachments: list[ParsedAttachment] = []
        self.defects: list[str] = []

    def walk(self, part: Message, in_alternative: bool = False) -> None:
        ctype = part.get_content_type()
        if ctype == "message/rfc822" or (ctype.startswith("message/") and part.is_multipart()):
            self._attach_message(part)
            return
        if part.is_multipart():
            payload = part.get_payload()
            subparts = payload if isinstance(payload, list) else []
            if ctype == "multipart/alternative":
                self._walk_alternative(subparts)
            else:
                for sub in subparts:
                    self.walk(sub, in_alternative)
            return
        self._leaf(part, ctype)

    def _walk_alternative(self, subparts: list[Message]) -> None:
        # Keep one plain and one HTML rendering, never both plain versions twice.
        before_text, before_html = len(self.text), len(self.html)
        for sub in subparts:
            if sub.get_content_type() == "text/plain" and len(self.text) > before_text:
                continue
            if sub.get_content_type() == "text/html" and len(self.html) > before_html:
                continue
            self.walk(sub, True)

    def _leaf(self, part: Message, ctype: str) -> None:
        disposition = (part.get_content_disposition() or "").lower()
        filename = _filename(part)
        data = _payload_bytes(part)
        is_body = ctype in ("text/plain", "text/html") and disposition != "attachment"
        if is_body and not filename:
            text = decode_bytes(data, part.get_content_charset())
            (self.text if ctype == "text/plain" else self.html).append(text)
            return
        if not data and not filename:
            return
        self.attachments.append(
            ParsedAttachment(
                filename=filename or _default_name(ctype, len(self.attachments) + 1),
                content_type=ctype,
                data=data,
                content_id=_first_id(decode_header_value(part.get("Content-ID", "")) or None),
                inline=disposition == "inline",
            )
        )

    def _attach_message(self, part: Message) -> None:
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            data = inner[0].as_bytes(policy=email.policy.compat32)
            subject = decode_header_value(inner[0].get("Subject", "")) or "message"
        else:
            data = _payload_bytes(part)
            subject = "message"
        name = _filename(part) or f"{subject[:60]}.eml"
        self.attachments.append(ParsedAttachment(name, "message/rfc822", data))


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
        name = part.get_param("name")
        if isinstance(name, tuple):  # RFC 2231 value the stdlib left undecoded
            name = email.utils.collapse_rfc2231_value(name)
    return decode_header_value(name) if name else ""


def _default_name(ctype: str, index: int) -> str:
    ext = {
        "text/plain": "txt",
        "text/html": "html",
        "text/calendar": "ics",
        "application/pdf": "pdf",
        "image/png": "png",
        "image/jpeg": "jpg",
        "image/gif": "gif",
        "application/ms-tnef": "dat",
    }.get(ctype, "bin")
    return f"attachment-{index}.{ext}"


def _ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _ID_RE.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [value.strip()]  # a bare id without angle brackets, as some mailers send
    seen: dict[str, None] = {}
    for item in found:
        seen.setdefault(item, None)
    return list(seen)


def _first_id(value: str | None) -> str | None:
    ids = _ids(value)
    return ids[0][:900] if ids else None


def _addresses(value: str | None) -> list[Address]:
    if not value:
        return []
    result = []
    for name, addr in _split_addresses(value):
        addr = addr.strip().lower()
        if "@" in addr:
            result.append(Address(name.strip().replace("\x00", ""), addr))
    return result


def _strict_getaddresses(values: list[str]) -> list[tuple[str, str]]:
    # strict=True (CVE-2023-27043 fix) exists only in newer patch releases.
    try:
        return email.utils.getaddresses(values, strict=True)  # type: ignore[call-arg]
    except TypeError:
        return email.utils.getaddresses(values)


_STDLIB_GETADDRESSES = _strict_getaddresses


def _split_addresses(value: str) -> list[tuple[str, str]]:
    """(name, address) pairs: the stdlib's strict parser when it copes, else mail-parser's
    recovering one (which is ten times slower, so only malformed headers pay for it)."""
    if "=?" not in value and '"' not in value and "\\" not in value:
        pairs = _STDLIB_GETADDRESSES([value])
        if pairs and all(addr and "@" in addr for _, addr in pairs):
            return pairs
    return get_addresses(value, decode_names=True)


def _first_address(value: str | None) -> Address | None:
    found = _addresses(value)
    return found[0] if found else None


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        result = parse_mail_date(value).value
    except Exception:
        return None
    if result is None:
        return None
    return result if result.tzinfo else result.replace(tzinfo=UTC)
