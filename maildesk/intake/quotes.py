"""Trim an agent's reply to what they wrote: no quoted history, no signature.

mail-parser-reply knows the quote headers and signatures of most mail clients in a
dozen languages; patterns for the languages it lacks (Russian among them) and for
plain `>` quoting are added here. The full original is always kept in the store.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "cs", "sv", "da"]
_PARSER = EmailReplyParser(languages=_LANGUAGES)

# Lines that start a quoted history in clients or languages the library does not know.
_QUOTE_HEADERS = re.compile(
    r"^\s*(?:"
    r".{0,200}(?:написал|написала|написал\(а\)|пишет|wrote|schrieb|napisał|napsal|a écrit)\s*:\s*$"
    r"|-{2,}\s*(?:Original Message|Forwarded message"
    r"|Исходное сообщение|Пересылаемое сообщение)\s*-{2,}"
    r"|_{10,}"
    r"|(?:From|От|Von|Od|De)\s*:\s.+"
    r")",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^-- ?$")  # RFC 3676 signature separator


def trim_reply(text: str) -> str:
    """The new part of a reply: text above the quoted history and the signature."""
    try:
        parsed = _PARSER.read(text)
        # `content` is the reply without quotes; its own signature guess treats any
        # "- item" line as a signature, so signatures are cut below instead.
        body = parsed.replies[0].content if parsed.replies else text
    except Exception:  # the library's regexes must never cost us a reply
        body = text
    return _cut_fallbacks(body or text).strip()


def _cut_fallbacks(text: str) -> str:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if _SIGNATURE.match(line) or _QUOTE_HEADERS.match(line):
            return "\n".join(lines[:index])
        if line.startswith(">") and all(
            not rest.strip() or rest.startswith(">") for rest in lines[index:]
        ):
            return "\n".join(lines[:index])
    return text


def ends_reply(line: str) -> bool:
    """Whether `line` starts the quoted history or the signature (for HTML replies,
    cut line by line as `trim_reply` cuts text)."""
    return bool(_SIGNATURE.match(line) or _QUOTE_HEADERS.match(line))
