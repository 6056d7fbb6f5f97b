"""The MIME parts of the files a notification carries, written by the email package.

Files go base64 (7-bit whatever they hold, the bytes exactly as stored). A picture the
HTML shows through `cid:` keeps its Content-ID and goes beside the HTML (related);
everything else is an attachment. A forwarded message (message/rfc822) goes as it is
when it can travel as 7-bit lines of at most 998 octets; otherwise (8-bit text, over-
long lines) as a base64 `.eml` file, since a message/* part may not be base64-encoded
(RFC 2046 5.2.1).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import MIMEPart
from email.policy import Policy
from pathlib import Path

from maildesk.outgoing.header_text import clean_text

_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
# Content-IDs we repeat as they came: short, and nothing that could end a header.
_SAFE_CID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}$")
_LONG_LINE = re.compile(rb"[^\n]{999}")
# A file name that can go as it is in quotes, on a line of its own.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9 !#$%&'()*+,./:;<>@\[\]^_`{|}~-]{1,60}")
_ATTRIBUTE_CHARS = "!#$&+-.^_`|~"  # RFC 2231 attribute-char besides letters and digits
_PIECE = 56
_CONTINUATION = re.compile(r"%[89AB]", re.IGNORECASE)  # a UTF-8 byte inside a character


@dataclass(frozen=True)
class FilePart:
    """A file to attach: its bytes, or the file that holds them, and how it is shown."""

    filename: str
    content_type: str
    source: bytes | str  # the bytes, or the path of a file holding them (read when written)
    content_id: str | None = None
    inline: bool = False

    def read(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else Path(self.source).read_bytes()


@dataclass
class Parts:
    related: list[MIMEPart] = field(default_factory=list)
    attached: list[MIMEPart] = field(default_factory=list)
    verbatim: list[str] = field(default_factory=list)  # text that goes out as it is


def file_parts(files: Sequence[FilePart], html: str | None, policy: Policy) -> Parts:
    """Each file as a MIME part, sorted into pictures the HTML shows and attachments."""
    parts = Parts()
    for file in files:
        cid = file.content_id if file.content_id and _SAFE_CID.match(file.content_id) else None
        shown = bool(html and cid and f"cid:{cid}" in html)
        part = MIMEPart(policy=policy)
        data = file.read()
        ctype = file.content_type.lower()
        name = clean_text(file.filename) or "attachment"
        if ctype == "message/rfc822" and (text := _as_is(data)) is not None:
            part["Content-Type"] = "message/rfc822"
            part.set_raw("Content-Disposition", disposition("attachment", name))
            part.set_payload(text)
            parts.verbatim.append(text)
            parts.attached.append(part)
            continue
        if ctype == "message/rfc822":
            ctype, name = "application/octet-stream", _eml(name)
        if not _CONTENT_TYPE.match(ctype) or ctype.startswith(("multipart/", "message/")):
            ctype = "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        part.set_content(data, maintype, subtype, cid=f"<{cid}>" if shown else None)
        del data
        part.set_raw("Content-Disposition", disposition("inline" if shown else "attachment", name))
        (parts.related if shown else parts.attached).append(part)
    return parts


def disposition(kind: str, name: str) -> str:
    """Content-Disposition naming the file: a short plain name quoted, any other RFC 2231
    encoded in pieces that fold into short lines. (The email package's own folding of
    long or encoded-word-like names writes quotes it then cannot read back.)"""
    if _PLAIN_NAME.fullmatch(name):
        return f'{kind};\n filename="{name}"'
    encoded = urllib.parse.quote(name, safe=_ATTRIBUTE_CHARS)
    pieces, rest = [], f"utf-8''{encoded}"
    while rest:
        cut = min(_PIECE, len(rest))
        # Never split a %XX, nor (for readers that decode piece by piece) a character.
        while "%" in rest[max(cut - 2, 0) : cut] or _CONTINUATION.match(rest, cut):
            cut -= 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    params = [f" filename*{i}*={piece}" for i, piece in enumerate(pieces)]
    return f"{kind};\n" + ";\n".join(params)


def _as_is(data: bytes) -> str | None:
    """A forwarded message as 7-bit text with CRLF line ends, or None if it cannot be."""
    if not data.isascii() or b"\x00" in data or _LONG_LINE.search(data.replace(b"\r\n", b"\n")):
        return None
    text = data.decode("ascii").replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "\r\n")


def _eml(name: str) -> str:
    return name if name.lower().endswith(".eml") else f"{name}.eml"
