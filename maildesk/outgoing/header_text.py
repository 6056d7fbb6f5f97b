"""Subjects and address headers as header objects the email package's generator writes.

The generator (`EmailMessage.as_bytes`) accepts any header object with a `name` and a
`fold(policy=...)` method (see `email.policy.EmailPolicy.fold`). Ours fold their text
with `email.header.Header`, the standard library's RFC 2047 encoder, because the
default header classes of CPython 3.11-3.13 get hostile text wrong: they decode a
typed `=?utf-8?q?...?=` into something else, write 76- and 77-character encoded words
(RFC 2047 allows 75), cannot split a long ASCII word in a display name (a 1,000-octet
line) and lose the quotes of a long quoted name when folding it.

Text that is plain (printable ASCII in short words, no `=?`) stays readable; anything
else becomes encoded words, which split anywhere, so every line stays short.
"""

from __future__ import annotations

import email.utils
import functools
import re
from email.charset import Charset
from email.header import Header
from email.policy import Policy

from maildesk.intake.message import Address

# Control characters (and the line breaks str.splitlines knows) end a header line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# Words short enough to fold between: "Thread-Topic: " plus one still fits in 78.
_PLAIN = re.compile(r"[!-~]{1,60}(?: [!-~]{1,60})*")

_ASCII = "us-ascii"
_ENCODED = "utf-8"  # Header writes utf-8 chunks as encoded words


class _RawUtf8(Charset):
    """UTF-8 written as is: a non-ASCII address in a message sent with SMTPUTF8 (RFC 6532)."""

    def __init__(self) -> None:
        super().__init__("utf-8")
        self.header_encoding = None  # Header then writes the text unencoded

    def __str__(self) -> str:  # unequal to "utf-8", so never merged into an encoded word
        return "utf-8 (raw)"


_RAW_UTF8 = _RawUtf8()
Chunk = tuple[str, "str | Charset"]


def clean_text(value: str) -> str:
    """Header text that stays on its header line: control characters become a space."""
    return _CONTROL.sub(" ", value).strip()


def is_plain(text: str) -> bool:
    """Whether `text` can go out as it is: short printable ASCII words, no `=?`."""
    return "=?" not in text and _PLAIN.fullmatch(text) is not None


class FoldedHeader(str):
    """A header object: its text (what reading the header gives) and how it is written."""

    name: str
    defects: tuple[()] = ()

    def __new__(cls, name: str, chunks: list[Chunk]) -> FoldedHeader:
        self = super().__new__(cls, "".join(text for text, _ in chunks))
        self.name = name
        self._chunks = chunks
        self._plain = all(charset is _ASCII for _, charset in chunks)
        return self

    def fold(self, *, policy: Policy) -> str:
        """`Name: value` folded to the policy's line length, ending with its line separator."""
        line = f"{self.name}: {self}"
        if self._plain and len(line) <= (policy.max_line_length or len(line)):
            return line + policy.linesep  # what Header writes for it, at a fifth of the cost
        chunks = tuple((text, _tag(charset)) for text, charset in self._chunks)
        return _encoded(self.name, chunks, policy.max_line_length, policy.linesep)


class TokenHeader(str):
    """A header of ASCII tokens (Message-IDs, a Thread-Index), folded only between tokens
    and never encoded. The email package refolds a line over the policy's length, and a
    token that cannot fit one line (an Exchange Message-ID of 70 characters, the
    Thread-Index of a long conversation) comes out as an RFC 2047 encoded word, which no
    mail client reads as an id: the message would not thread."""

    name: str
    defects: tuple[()] = ()

    def __new__(cls, name: str, value: str) -> TokenHeader:
        self = super().__new__(cls, value)
        self.name = name
        return self

    def fold(self, *, policy: Policy) -> str:
        """`Name: tokens`, a token per line where they do not fit the policy's length (a
        line may then run to the token's length; RFC 5322 allows 998)."""
        limit = policy.max_line_length or 998
        lines = [f"{self.name}:"]
        for token in self.split():
            if len(lines[-1]) + 1 + len(token) > limit and lines[-1] != f"{self.name}:":
                lines.append("")
            lines[-1] += " " + token
        return policy.linesep.join(lines) + policy.linesep


def _tag(charset: str | Charset) -> str:
    return charset if isinstance(charset, str) else _RAW_TAG


_RAW_TAG = "raw"


# A ticket's notifications share their subject and names (the acknowledgement and each
# agent's copy): encoding them once per render process was a third of rendering those
# with non-ASCII subjects (Header.encode, ~130 us a header).
@functools.lru_cache(maxsize=1024)
def _encoded(name: str, chunks: tuple[tuple[str, str], ...], width: int | None, sep: str) -> str:
    """`Name: value` as `email.header.Header` encodes and folds the chunks."""
    header = Header(header_name=name, maxlinelen=width)
    for text, tag in chunks:
        header.append(text, _RAW_UTF8 if tag == _RAW_TAG else tag)
    return f"{name}: {header.encode(splitchars=' ', linesep=sep)}{sep}"


def text_header(name: str, value: str) -> FoldedHeader:
    """An unstructured header (Subject, Thread-Topic) that reads back as `value` exactly."""
    text = clean_text(value)
    return FoldedHeader(name, [(text, _ASCII if is_plain(text) else _ENCODED)])


def address_header(name: str, mailboxes: list[Address]) -> FoldedHeader:
    """From, To, Cc or Reply-To: plain names quoted as needed, others encoded words.

    Names and addresses must already be free of control characters."""
    chunks: list[Chunk] = []
    for index, box in enumerate(mailboxes):
        if index:
            chunks.append((", ", _ASCII))
        address = (box.address, _ASCII if box.address.isascii() else _RAW_UTF8)
        quoted = email.utils.formataddr((box.name, "x@x"))[: -len(" <x@x>")]
        if not box.name:
            chunks.append(address)
        elif is_plain(quoted) and box.address.isascii():  # quoting may lengthen words
            chunks.append((f"{quoted} <{box.address}>", _ASCII))
        else:
            chunks += [(box.name, _ENCODED), (" <", _ASCII), address, (">", _ASCII)]
    return FoldedHeader(name, _merged(chunks))


def _merged(chunks: list[Chunk]) -> list[Chunk]:
    """Neighbouring chunks of one kind joined (Header would join them with a space)."""
    out: list[Chunk] = []
    for text, charset in chunks:
        if out and out[-1][1] is charset:
            out[-1] = (out[-1][0] + text, charset)
        else:
            out.append((text, charset))
    return out
