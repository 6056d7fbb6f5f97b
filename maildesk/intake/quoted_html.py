"""HTML as plain text with quoted parts marked: each `<blockquote>` level becomes "> ".

Used to trim HTML-only replies: mail.ru, Yandex, Gmail and Thunderbird quote the
history in blockquotes, which plain HTML-to-text turns into ordinary lines.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from maildesk.intake.html_text import html_to_text

_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr"}
_SKIP = {"script", "style", "head", "title"}


class _QuotedText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []  # (quote depth, text)
        self._line: list[str] = []
        self._depth = 0
        self._skip = 0

    def _break(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._line)).strip()
        if text or (self.lines and self.lines[-1][1]):
            self.lines.append((self._depth, text))
        self._line = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "blockquote":
            self._break()
            self._depth += 1
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self._skip:
            self._skip -= 1
        elif tag == "blockquote" and self._depth:
            self._break()
            self._depth -= 1
        elif tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._line.append(data)


def quoted_html_text(markup: str) -> str:
    """Readable text from HTML, lines inside blockquotes prefixed with one '>' per level."""
    parser = _QuotedText()
    try:
        parser.feed(markup)
        parser.close()
        parser._break()
    except Exception:  # never let a body stop ingest: fall back to the plain rendering
        return html_to_text(markup)
    out = [("> " * depth + text).rstrip() if text else ">" * depth for depth, text in parser.lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()
