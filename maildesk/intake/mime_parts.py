"""Walking a MIME tree once: text and HTML bodies, attachments, TNEF and uuencoded files.

Broken structure is read as mail clients read it: a multipart without a usable
boundary gets one guessed from its body, junk content types are text, and a text
body over the size limit is kept as an attachment.
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
import email.utils
import re
from email.message import Message

from maildesk.common.errors import ParseError
from maildesk.intake.charsets import decode_bytes
from maildesk.intake.header_values import (
    decode_header_value,
    first_id,
    readable_params,
    scrub,
)
from maildesk.intake.message import (
    DroppedAttachment,
    ParsedAttachment,
    ParseLimits,
    Spilled,
    StoredPart,
    human_size,
)
from maildesk.intake.tnef import TnefError, parse_tnef

_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_UU_BLOCK = re.compile(rb"(?ms)^begin [0-7]{3,4} ([^\r\n]+)\r?\n(.*?)^end[ \t\r]*$")
_GUESS_BOUNDARY = re.compile(r"(?m)^--([^\s]{1,200})[ \t\r]*$")
MAX_DEPTH = 100


class MimeWalker:
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
                f"[The message text is {human_size(len(data))}; it is attached as {filename}.]"
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
            content_id = first_id(decode_header_value(part.get("Content-ID", "")) or None)
            inline = _disposition(part) == "inline"
        self.attachments.append(
            ParsedAttachment(
                filename=scrub(filename),
                content_type=ctype,
                data=data,
                content_id=content_id,
                inline=bool(inline),
            )
        )

    def _drop(self, filename: str, ctype: str, size: int) -> None:
        limit = human_size(self.limits.max_attachment_bytes)
        reason = f"larger than the {limit} attachment limit"
        self.dropped.append(DroppedAttachment(scrub(filename), ctype, size, reason))

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
                size = human_size(stored.size)
                self.text[-1] = f"[The message text is {size}; too large to keep.]"
            self._drop(filename, ctype, stored.size)
            return
        self.attachments.append(
            ParsedAttachment(
                filename=filename,
                content_type=ctype,
                data=b"",
                content_id=first_id(decode_header_value(part.get("Content-ID", "")) or None),
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
            self.text.append(scrub(content.body))
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
    return f"[The message text is {human_size(size)}; it is attached as {filename}.]"


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
    part = readable_params(part)
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
