"""Trim an agent's reply to what they wrote: no quoted history, no signature.

Top-posted answers end where the quoted history starts (`quote_marks` finds it).
Bottom-posted answers follow the `>` quote; answers written between quoted lines keep
the lines they answer, so the customer can read them. When trimming would leave
nothing, the whole message is kept: an agent's answer is never lost. The full original
is always kept in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from maildesk.intake.html_text import html_to_text
from maildesk.intake.quote_marks import (
    Header,
    find_headers,
    is_blank,
    is_quoted,
    signature_at,
)
from maildesk.intake.quoted_html import quoted_html_text

# How the relayed text was found.
TOP = "top"  # above the quoted history (or no history at all)
BOTTOM = "bottom"  # below a `>` quote
INLINE = "inline"  # between quoted lines, which are kept with it
WHOLE = "whole"  # trimming left nothing, so the whole message is kept


@dataclass(frozen=True)
class Reply:
    """The part of a reply to relay, and how it was found."""

    text: str
    how: str


def reply_source(text: str, html: str | None) -> str:
    """The text to trim: for an HTML-only mail, its HTML with each quote level marked
    by `>` (HTML-to-text drops blockquotes, and with them where the history starts)."""
    if html and (not text.strip() or text == html_to_text(html)):
        return quoted_html_text(html)
    return text


def trim_reply(text: str) -> str:
    """The new part of a reply (see `extract_reply`)."""
    return extract_reply(text).text


def extract_reply(text: str) -> Reply:
    """The answer in a reply: above the history, below or between `>` quotes, or the
    whole text when nothing else is left."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headers = find_headers(lines)
    first_quote = next((i for i, line in enumerate(lines) if is_quoted(line)), len(lines))
    history = min([first_quote, *(h.start for h in headers)])
    top = _until_signature(lines, 0, history)
    blocks, stop = _answers_after(lines, history, headers)
    between = [b for b in blocks if b[1] < stop and _quote_follows(lines, b[1], stop)]
    if between:
        end = blocks[-1][1]
        return Reply(_join(lines[:end]), INLINE)
    trailing = _join(lines[blocks[-1][0] : blocks[-1][1]]) if blocks else ""
    answer = "\n\n".join(part for part in (_join(top), trailing) if part)
    if answer:
        return Reply(answer, TOP if not trailing or _join(top) else BOTTOM)
    return Reply(text.strip(), WHOLE)


def _answers_after(
    lines: list[str], history: int, headers: list[Header]
) -> tuple[list[tuple[int, int]], int]:
    """Unquoted runs of text after a `>` quote: [start, end) each, and where the scan
    stopped (a later header, a signature, or the end)."""
    header_lines = {i for h in headers for i in range(h.start, h.end)}
    blocks: list[tuple[int, int]] = []
    seen_quote = False
    start: int | None = None
    stop = len(lines)
    for index in range(history, len(lines)):
        line = lines[index]
        if is_quoted(line):
            seen_quote = True
            if start is not None:
                blocks.append(_strip_blank(lines, start, index))
                start = None
            continue
        if not seen_quote or is_blank(line):
            continue
        if index in header_lines or signature_at(lines, index, _segment_end(lines, index)):
            stop = index
            break
        if start is None:
            start = index
    if start is not None:
        blocks.append(_strip_blank(lines, start, stop))
    return [b for b in blocks if b[0] < b[1]], stop


def _segment_end(lines: list[str], index: int) -> int:
    """The end of the unquoted run that `index` is in."""
    end = index
    while end < len(lines) and not is_quoted(lines[end]):
        end += 1
    return end


def _quote_follows(lines: list[str], end: int, stop: int) -> bool:
    return any(is_quoted(line) for line in lines[end:stop])


def _until_signature(lines: list[str], start: int, end: int) -> list[str]:
    for index in range(start, end):
        if signature_at(lines, index, end):
            return lines[start:index]
    return lines[start:end]


def _strip_blank(lines: list[str], start: int, end: int) -> tuple[int, int]:
    while start < end and is_blank(lines[start]):
        start += 1
    while end > start and is_blank(lines[end - 1]):
        end -= 1
    return start, end


def _join(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip()


def history_start(lines: list[str]) -> int:
    """Where the quoted history or the signature starts (len(lines) if nowhere), for
    cutting an HTML reply line by line as `extract_reply` cuts text."""
    headers = find_headers(lines)
    first_quote = next((i for i, line in enumerate(lines) if is_quoted(line)), len(lines))
    history = min([first_quote, *(h.start for h in headers)])
    for index in range(history):
        if signature_at(lines, index, history):
            return index
    return history
