"""Text in whatever charset mail declares, or fails to declare.

Declared charsets are tried first, then UTF-8 (kept, with replacement characters, when
only a few bytes are broken), then a guess: the Cyrillic code pages when the bytes read
as Cyrillic (mislabelled Russian mail is common), otherwise charset-normalizer's choice
among the Western and Central European code pages (Polish mail in Windows-1250 or
ISO-8859-2 is as common as Western mail in Windows-1252). RFC 2047 encoded words are
decoded here rather than by mail-parser, which drops undecodable text.
"""

from __future__ import annotations

import binascii
import codecs
import re

ENCODED_WORD = re.compile(r"=\?([^?\s]{1,40})\?([bBqQ])\?([^?\s]*)\?=")


def decode_encoded_words(text: str) -> str:
    """Decode RFC 2047 words; adjacent words in one charset are joined before decoding,
    so a character split across two words survives. Undecodable bytes become U+FFFD."""
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    pos = 0

    def flush() -> None:
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset, guess=False))
            pending.clear()

    for match in ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 language suffix
        if between.strip() or charset != pending_charset:
            flush()
            if between.strip() or not out:
                out.append(between)
        pending_charset = charset
        pending.append(_decode_word(match.group(2), match.group(3)))
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def _decode_word(kind: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if kind in "qQ":
        return binascii.a2b_qp(data.replace(b"_", b" "))
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return b""


def decode_bytes(data: bytes, charset: str | None, *, guess: bool = True) -> str:
    """Decode text in its declared charset; when that is missing or fails, UTF-8 (also
    with a few broken bytes), then the likeliest single-byte code page."""
    declared = _charset_alias(charset) if charset else None
    if declared and not _known(declared):
        declared = None
    if declared and not (guess and declared in _GUESSABLE and not data.isascii()):
        try:
            return data.decode(declared)
        except (LookupError, UnicodeDecodeError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared and declared not in _GUESSABLE:
        try:
            return data.decode(declared, "replace")
        except (UnicodeError, ValueError):  # codecs such as idna fail even with "replace"
            pass
    mostly = _mostly_utf8(data)
    if mostly is not None:
        return mostly
    return _guess_8bit(data, detect=declared != "cp1252")


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with replacement characters when nearly all of its non-ASCII bytes form valid
    UTF-8: one bad byte must not turn a Russian letter into Windows-1252 mojibake. Text
    in a single-byte code page almost never forms valid multi-byte sequences."""
    text = data.decode("utf-8", "replace")
    broken = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    valid = sum(1 for c in text if c > "\x7f" and c != "\ufffd")
    return text if valid >= 4 and valid >= 8 * broken else None


# Charsets mailers put on text that is often really in another single-byte charset.
_GUESSABLE = {"utf-8", "cp1252"}


def _known(charset: str) -> bool:
    """A text codec Python has (not "base64", "zlib" and the like)."""
    try:
        return bool(getattr(codecs.lookup(charset), "_is_text_encoding", True))
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        return False


def _guess_8bit(data: bytes, *, detect: bool = True) -> str:
    """Windows-1251 or KOI8-R (by letter case) when the text reads as Cyrillic; otherwise
    charset-normalizer's pick of a Latin code page (`detect`), or Windows-1252."""
    latin = data.decode("cp1252", "replace")
    letters = [c for c in latin if c.isalpha()]
    accented = sum(not c.isascii() for c in letters)
    # Latin-script text has a few accents among ASCII letters; Cyrillic read as
    # Windows-1252 is almost all accented letters.
    if not letters or accented / len(letters) < 0.3:
        return _latin_code_page(data) if detect else latin
    best, best_lower = latin, -1
    for candidate in ("cp1251", "koi8-r"):
        text = data.decode(candidate, "replace")
        # Russian text is mostly lower case; KOI8-R read as 1251 (and back) flips the case.
        lower = sum(c.islower() for c in text if "\u0400" <= c <= "\u04ff")
        if lower > best_lower:
            best, best_lower = text, lower
    return best


# Code pages an undeclared Latin-script mail is written in; Windows-1252 wins ties (it is
# the commonest, and the short texts of mail often score the same in several).
_LATIN_PAGES = ["cp1252", "cp1250", "iso8859_2"]


def _latin_code_page(data: bytes) -> str:
    from charset_normalizer import from_bytes  # only mail without a usable charset needs it

    try:
        matches = list(from_bytes(data, cp_isolation=_LATIN_PAGES))
    except Exception:  # a detector failure must not cost the body
        matches = []
    if not matches:
        return data.decode("cp1252", "replace")
    best = matches[0]
    for match in matches:
        tie = match.chaos <= best.chaos and match.coherence >= best.coherence
        if match.encoding == "cp1252" and tie:
            best = match
    return data.decode(best.encoding, "replace")


def _charset_alias(charset: str) -> str:
    name = charset.strip().strip('"').strip("'").lower()
    # Mailers label Windows code pages with the ISO name, and "unknown-8bit" is no charset.
    return {
        "iso-8859-1": "cp1252",
        "iso8859-1": "cp1252",
        "latin1": "cp1252",
        "latin-1": "cp1252",
        "windows-1252": "cp1252",
        "us-ascii": "utf-8",
        "ascii": "utf-8",
        "utf8": "utf-8",
        "unknown-8bit": "utf-8",
        "x-unknown": "utf-8",
        "win-1251": "cp1251",
        "ks_c_5601-1987": "cp949",
        "gb2312": "gb18030",
        "gbk": "gb18030",
    }.get(name, name)
