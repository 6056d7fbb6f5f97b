"""Header values made safe: decoded words, Message-IDs, addresses and dates, bounded.

Everything that comes out is safe to store: no NUL bytes, no lone surrogates, bounded
lengths, addresses that are plain `local@domain`.
"""

from __future__ import annotations

import email.utils
import re
import unicodedata
from datetime import UTC, datetime
from email.header import Header, decode_header
from email.message import Message

from maildesk.intake.charsets import ENCODED_WORD, decode_bytes, decode_encoded_words
from maildesk.intake.message import Address

_ID_RE = re.compile(r"<([^<>\s\x00-\x1f\x7f]+)>")
_BARE_ID_RE = re.compile(r"^[^<>\s\x00-\x1f\x7f]+$")
WHITESPACE = re.compile(r"\s+")
_SURROGATES = re.compile(r"[\udc80-\udcff]")
_ANY_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ADDR_RE = re.compile(
    r"^[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]{1,64}@[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]{1,253}$"
)
MAX_NAME = 200  # characters of a display name kept (README: Hostile and broken mail)
MAX_ADDRESSES = 100
MAX_IDS = 100
# Bytes, not characters: a unique index entry holds at most 2,704 bytes on PostgreSQL,
# and 900 characters of 4-byte UTF-8 are 3,600 (the batch could never be written).
MAX_ID_BYTES = 900


def scrub(text: str) -> str:
    """Text any database accepts: no NUL characters and no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _ANY_SURROGATE.search(text):
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the last one "…" when it was cut.

    The cut never separates a character from what joins onto it (accents, emoji
    modifiers and ZWJ sequences, the two halves of a flag), so no half-drawn
    character is left at the end."""
    if len(text) <= limit:
        return text
    cut = limit - 1
    while cut > 0 and (_joins_previous(text[cut]) or text[cut - 1] == _ZWJ):
        cut -= 1
    flags = len(text[:cut]) - len(text[:cut].rstrip(_REGIONAL_INDICATORS))
    cut -= flags % 2 if _REGIONAL_INDICATORS.find(text[cut]) >= 0 else 0
    return text[:cut].rstrip() + "…"


def _joins_previous(char: str) -> bool:
    """A combining mark, variation selector, emoji modifier or tag: part of the character
    before it."""
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == _ZWJ
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


_ZWJ = "\u200d"
_REGIONAL_INDICATORS = "".join(chr(c) for c in range(0x1F1E6, 0x1F200))


def unfold_8bit(text: str) -> str:
    if _SURROGATES.search(text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), None)
    return text.replace("\r", "").replace("\n", "")


def has_8bit(text: str) -> bool:
    """Does `text` (a header as the stdlib parser read it) carry raw 8-bit bytes?"""
    return bool(_SURROGATES.search(text))


def decode_header_value(value: object) -> str:
    """A header value as text: raw 8-bit bytes (UTF-8 first) and RFC 2047 encoded words
    decoded. A `Header`, as `Message.get` returns for 8-bit text, is read from its bytes:
    `str()` on it would turn every 8-bit byte into U+FFFD."""
    if isinstance(value, Header):
        value = "".join(
            part.decode("ascii", "surrogateescape") if isinstance(part, bytes) else part
            for part, _ in decode_header(value)
        )
    text = unfold_8bit(str(value))
    if "=?" in text:
        text = decode_encoded_words(text)
    return scrub(text)


def readable_params(part: Message) -> Message:
    """`part`, or, when its Content-Type or Content-Disposition carries raw 8-bit text, a
    stand-in with those two decoded (UTF-8 first), so file names read as sent."""
    wanted = ("content-type", "content-disposition")
    raw = [(name, str(value)) for name, value in part.raw_items() if name.lower() in wanted]
    if not any(has_8bit(value) for _, value in raw):
        return part
    shadow = Message()
    for name, value in raw:
        shadow[name] = unfold_8bit(value)
    return shadow


def id_list(value: str | None) -> list[str]:
    if not value:
        return []
    found = _ID_RE.findall(value)
    if not found and _BARE_ID_RE.match(value.strip()):
        found = [value.strip()]  # a bare id without angle brackets, as some mailers send
    seen: dict[str, None] = {}
    for item in found:
        if len(item.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES:
            seen.setdefault(item, None)
    return list(seen)[:MAX_IDS]


def first_id(value: str | None) -> str | None:
    ids = id_list(value)
    return ids[0] if ids else None


def address_list(value: str | None, defects: list[str] | None = None) -> list[Address]:
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
        pairs = _simpleaddress_list(value) or _mailparser_addresses(value)
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
        clean_name = clip(WHITESPACE.sub(" ", decode_header_value(name)).strip(), MAX_NAME)
        result.append(Address(clean_name, addr))
    return result


def _simpleaddress_list(value: str) -> list[tuple[str, str]]:
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


def sender_of(headers: dict[str, str], defects: list[str]) -> Address | None:
    """From, else Sender, Reply-To or the envelope sender (Return-Path)."""
    for name in ("from", "sender", "reply-to", "return-path"):
        found = address_list(headers.get(name), defects)
        if found:
            if name != "from":
                defects.append(f"no usable From: sender taken from {name.title()}")
            return found[0]
    return None


def date_of(value: str | None, defects: list[str] | None = None) -> datetime | None:
    if not value:
        return None
    try:
        from mailparser.dates import parse_mail_date  # the parser child's; see below

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


def _mailparser_addresses(value: str) -> list[tuple[str, str]]:
    # mailparser (11 MiB) loads only where mail is parsed, the children, not in the
    # daemon, which reads an address list only for a list's rewritten From.
    from mailparser.utils import get_addresses

    return get_addresses(value, decode_names=False)
