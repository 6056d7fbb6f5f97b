"""Raw bytes -> ParsedMessage: headers decoded, bodies in text, attachments as bytes.

The stdlib parser (compat32, as mail-parser uses it) builds the tree; mail-parser's
helpers split addresses and read dates (`header_values`), and `mime_parts` sorts the
leaves. Encoded words and bodies are decoded here: mail-parser drops undecodable
header text and returns 7-bit charsets such as ISO-2022-JP undecoded.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re

from maildesk.common.errors import ParseError
from maildesk.intake.delivery_status import has_report_part, read_delivery_status
from maildesk.intake.header_values import (
    WHITESPACE,
    address_list,
    clip,
    date_of,
    decode_header_value,
    first_id,
    id_list,
    scrub,
    sender_of,
    unfold_8bit,
)
from maildesk.intake.html_text import html_to_text, sanitize_html
from maildesk.intake.message import (
    SPILL_HEADER,
    ParsedMessage,
    ParseLimits,
    Spilled,
    attached_original,
)
from maildesk.intake.mime_parts import MimeWalker
from maildesk.intake.report_signals import looks_like_report

MAX_SUBJECT = 1000
MAX_HEADERS = 2000
# Structured fields where RFC 2047 words are not allowed: decoding one could turn an
# echoed address like "=?utf-8?q?=3Bdkim=3Dpass?=@evil.example" into a forged result.
UNDECODED_HEADERS = frozenset({"authentication-results"})
# RFC 5322 4.5.3 (obs-optional, from RFC 822) allows white space between a field name
# and its colon; the stdlib parser would end the header block at such a line.
_OBS_FIELD_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.MULTILINE)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def parse_message(
    raw: bytes,
    *,
    limits: ParseLimits | None = None,
    spilled: Spilled | None = None,
    nested: bool = False,
) -> ParsedMessage:
    """Parse raw RFC 5322 bytes; raise ParseError only when nothing usable is there.

    The first attached message is read too (`attached_message`), unless `nested`: one
    level, so a message inside a message inside a message is not read again and again.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark some tools write first
        raw = raw[3:]
    if not raw.strip():
        raise ParseError("empty message: no headers and no body")
    readable, obsolete = _modern_field_names(raw)
    try:
        msg = email.message_from_bytes(readable, policy=email.policy.compat32)
        raw_items = list(msg.raw_items())
    except RecursionError:
        raise ParseError("MIME nesting too deep to parse") from None
    if spilled is not None:
        raw_items = [(n, v) for n, v in raw_items if n.lower() != SPILL_HEADER.lower()]
    if not raw_items:
        raise ParseError("no headers found: this is not an email message")
    raw_items = raw_items[:MAX_HEADERS]
    headers = [
        (scrub(str(name))[:200], _header_text(str(name), value)) for name, value in raw_items
    ]
    first: dict[str, str] = {}
    undecoded: dict[str, str] = {}  # address and id headers are split before words are decoded
    for (name, value), (_, raw_value) in zip(headers, raw_items, strict=True):
        first.setdefault(name.lower(), value)
        undecoded.setdefault(name.lower(), scrub(unfold_8bit(str(raw_value))))
    body = MimeWalker(limits or ParseLimits(), spilled)
    try:
        body.walk(msg)
    except RecursionError:
        raise ParseError("MIME nesting too deep to parse") from None
    html = sanitize_html("\n".join(body.html)) if body.html else None
    text = "\n".join(body.text) if body.text else (html_to_text(html) if html else "")
    parsed = ParsedMessage(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=first_id(undecoded.get("message-id")),
        in_reply_to=id_list(undecoded.get("in-reply-to")),
        references=id_list(undecoded.get("references")),
        subject=clip(WHITESPACE.sub(" ", first.get("subject", "")).strip(), MAX_SUBJECT),
        sender=sender_of(undecoded, body.defects),
        reply_to=address_list(undecoded.get("reply-to"), body.defects),
        to=address_list(undecoded.get("to"), body.defects),
        cc=address_list(undecoded.get("cc"), body.defects),
        date=date_of(undecoded.get("date"), body.defects),
        text=scrub(text),
        html=scrub(html) if html is not None else None,
        attachments=body.attachments,
        headers=headers,
        content_type=msg.get_content_type(),
        defects=[type(d).__name__ for d in msg.defects] + obsolete + body.defects,
        dropped=body.dropped,
    )
    # Read here, within the parser's limits. (Not msg.header(): its index would be pickled.)
    try:
        if looks_like_report(parsed, first, has_report_part(msg)):
            parsed.delivery = read_delivery_status(msg, raw, spilled)
    except RecursionError:
        raise ParseError("MIME nesting too deep to parse") from None
    if not nested:
        parsed.attached_message = _read_attached(parsed, limits)
    return parsed


def _read_attached(parsed: ParsedMessage, limits: ParseLimits | None) -> ParsedMessage | None:
    attachment = attached_original(parsed.attachments)
    if attachment is None:
        return None
    try:
        return parse_message(attachment.data, limits=limits, nested=True)
    except ParseError:
        return None  # an attachment that is no message stays an attachment


def _modern_field_names(raw: bytes) -> tuple[bytes, list[str]]:
    """The message with "Subject : x" in its header block read as "Subject: x"."""
    blank = _BLANK_LINE.search(raw)
    end = blank.start() if blank else len(raw)
    head = raw[:end]
    fixed = _OBS_FIELD_NAME.sub(rb"\1:", head)
    if fixed == head:
        return raw, []
    return fixed + raw[end:], ["white space before a header colon (obsolete syntax) read"]


def _header_text(name: str, value: object) -> str:
    if name.strip().lower() in UNDECODED_HEADERS:
        return scrub(unfold_8bit(str(value)))
    return decode_header_value(value)
