"""An HTML reply cut as its text is: leading `#command` lines out, and everything from
the quoted history or the signature on.

The HTML is split into the lines a mail client shows (block elements and `<br>` end
them); lines are judged by their text with the same patterns as plain-text replies
(`quotes.history_start`). Tags of dropped lines may be left unbalanced: the sanitiser
that runs next closes or drops them.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from maildesk.intake.quotes import history_start

_BREAK_AFTER = {"br"}
_BLOCKS = {
    "p", "div", "tr", "li", "ul", "ol", "dl", "table", "blockquote", "pre", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip


@dataclass
class _Line:
    markup: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    image: bool = False

    @property
    def words(self) -> str:
        return "".join(self.text).strip()

    @property
    def blank(self) -> bool:
        return not self.words and not self.image


class _Splitter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.lines: list[_Line] = [_Line()]

    def _new_line(self) -> None:
        if self.lines[-1].markup:
            self.lines.append(_Line())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self._new_line()
        self.lines[-1].markup.append(self.get_starttag_text() or "")
        self.lines[-1].image |= tag == "img"
        if tag in _BREAK_AFTER or tag == "hr":
            self._new_line()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.lines[-1].markup.append(f"</{tag}>")
        if tag in _BLOCKS:
            self._new_line()

    def handle_data(self, data: str) -> None:
        self.lines[-1].markup.append(html.escape(data, quote=False))
        self.lines[-1].text.append(data)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.handle_data(html.unescape(f"&#{name};"))


def trim_html_reply(markup: str, is_command: Callable[[str], bool]) -> str:
    """`markup` without its leading command lines (their tags stay, so the layout
    does) and without the quoted history and signature."""
    splitter = _Splitter()
    splitter.feed(markup)
    splitter.close()
    lines = splitter.lines
    commands = [i for i, line in enumerate(_leading(lines)) if is_command(line.words)]
    last_command = commands[-1] if commands else -1
    cut = last_command + 1 + history_start([line.words for line in lines[last_command + 1 :]])
    kept: list[tuple[str, bool]] = []
    for index, line in enumerate(lines[:cut]):
        if index <= last_command:
            tags = [m for m in line.markup if m.startswith("<") and not m.startswith("<br")]
            kept.append(("".join(tags), True))
        else:
            kept.append(("".join(line.markup), line.blank))
    while kept and kept[-1][1]:  # what led up to the cut (an Outlook rule, empty lines)
        kept.pop()
    return "".join(markup for markup, _blank in kept)


def _leading(lines: list[_Line]) -> list[_Line]:
    """The lines before the first that is neither blank nor a command (to judge)."""
    for index, line in enumerate(lines):
        if not line.blank and not line.words.startswith("#"):
            return lines[:index]
    return lines
