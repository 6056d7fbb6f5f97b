"""What "valid on the wire" means for a message we send, checked on its bytes.

`wire_problems(raw)` lists every way the bytes break RFC 5321/5322/2045/2047 that a
server or client would trip over; `subject_of` and `mailboxes_of` read headers back
with an RFC 2047 decoder that is not the one that wrote them.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from email.errors import NonASCIILocalPartDefect
from email.header import decode_header, make_header
from email.message import EmailMessage

ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
SEVEN_BIT = {"7bit", "quoted-printable", "base64"}


def wire_problems(raw: bytes) -> list[str]:
    """Everything wrong with `raw` as a message handed to SMTP; [] when it is valid."""
    problems = _line_problems(raw)
    utf8 = not raw.isascii()  # only a message to a non-ASCII address may be (RFC 6532)
    text = raw.decode("utf-8") if utf8 else raw.decode("ascii")
    try:
        strict = email.message_from_string(text, policy=email.policy.strict)
    except Exception as exc:  # strict raises on the first defect
        return [*problems, f"strict parse failed: {type(exc).__name__}: {exc}"]
    legacy = email.message_from_string(text, policy=email.policy.compat32)
    for part, raw_part in zip(strict.walk(), legacy.walk(), strict=True):
        problems += [f"defect {d!r}" for d in part.defects]
        for name, value in part.items():
            defects = getattr(value, "defects", ())
            if utf8:  # RFC 6532 allows what the email package reports here
                defects = [d for d in defects if not isinstance(d, NonASCIILocalPartDefect)]
            problems += [f"{name}: defect {d!r}" for d in defects]
        for name, value in raw_part.items():  # as written, still folded
            problems += _header_problems(name, value)
        if not part.is_multipart() and part.get("Content-Transfer-Encoding", "7bit") not in (
            SEVEN_BIT
        ):
            problems.append(f"transfer encoding {part['Content-Transfer-Encoding']} is not 7-bit")
    return problems


def _line_problems(raw: bytes) -> list[str]:
    problems = []
    if re.search(rb"\r(?!\n)|(?<!\r)\n", raw):
        problems.append("a bare CR or LF (only CRLF may end a line)")
    if b"\x00" in raw:
        problems.append("a NUL octet (RFC 5322 2.3)")
    if not raw.endswith(b"\r\n"):
        problems.append("the last line does not end with CRLF")
    longest = max(len(line) for line in raw.split(b"\r\n"))
    if longest > 998:
        problems.append(f"a line of {longest} octets (RFC 5322 allows 998)")
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if not line.strip():
            problems.append("a header line of only white space")
    return problems


def _header_problems(name: str, folded: str) -> list[str]:
    problems = []
    lines = f"{name}: {folded}".split("\r\n")
    for line in lines:
        if len(line) > 78:  # characters (RFC 6532 counts octets only for the 998 limit)
            problems.append(f"{name}: a line of {len(line)} characters (SHOULD be <= 78)")
    if any(line[:1] not in (" ", "\t") for line in lines[1:]):
        problems.append(f"{name}: a continuation line without leading white space")
    for word in ENCODED_WORD.findall(folded):
        if len(word) > 75:
            problems.append(f"{name}: an encoded word of {len(word)} characters (max 75)")
    return problems


def parse(raw: bytes) -> EmailMessage:
    text = raw.decode("utf-8") if not raw.isascii() else raw.decode("ascii")
    return email.message_from_string(text, policy=email.policy.default)  # type: ignore[return-value]


def raw_header(raw: bytes, name: str) -> str:
    """The value of header `name` as written, unfolded, not decoded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    for line in re.sub(r"\r\n(?=[ \t])", "", head).split("\r\n"):
        field, _, value = line.partition(":")
        if field.lower() == name.lower():
            return value.removeprefix(" ")
    raise KeyError(name)


def decoded(value: str) -> str:
    """RFC 2047 decoding as mail clients do it (white space between encoded words goes)."""
    return str(make_header(decode_header(value)))


def subject_of(raw: bytes) -> str:
    return decoded(raw_header(raw, "Subject"))


def mailboxes_of(raw: bytes, name: str = "To") -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, names decoded."""
    pairs = email.utils.getaddresses([raw_header(raw, name)])
    return [(decoded(display) if display else "", address) for display, address in pairs]
