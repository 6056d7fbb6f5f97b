"""HTML bodies: sanitise before storing or sending, and turn into plain text.

Two allow-lists, both enforced by nh3. What is stored keeps nh3's defaults (plus `cid:`
images, so inline pictures still show). What is mailed on, an agent's reply to the
customer or a customer's mail to the agents, keeps only `MAIL_TAGS` and
`MAIL_ATTRIBUTES`: text formatting, links, lists, tables and inline images (README:
Attachments and formatting).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3

_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"}
_SKIP = {"script", "style", "head", "title"}

# The documented allow-list for HTML we mail on.
MAIL_TAGS = frozenset(
    {
        # text formatting
        "b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "sub", "sup", "small",
        "big", "mark", "code", "kbd", "samp", "pre", "tt", "q", "cite", "abbr", "blockquote",
        "p", "div", "span", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "center",
        # links, lists, tables, inline images
        "a", "ul", "ol", "li", "dl", "dt", "dd",
        "table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td",
        "img",
    }
)  # fmt: skip
MAIL_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style", "title", "dir", "lang", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start", "type"},
    "table": {"border", "cellpadding", "cellspacing", "width"},
    "td": {"colspan", "rowspan", "valign", "width"},
    "th": {"colspan", "rowspan", "valign", "width"},
    "col": {"span", "width"},
}
MAIL_STYLES = frozenset(
    {
        "color", "background-color", "font-weight", "font-style", "font-size", "font-family",
        "text-decoration", "text-align", "vertical-align", "border", "padding", "margin",
        "width", "height",
    }
)  # fmt: skip
# `cid:` points at an image of the same mail; nothing relative (it has no base) or active.
MAIL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})


def sanitize_html(markup: str) -> str:
    """HTML as stored: scripts, event handlers and other active content removed (nh3)."""
    return nh3.clean(markup, url_schemes=nh3.ALLOWED_URL_SCHEMES | {"cid"})


def sanitize_mail_html(markup: str) -> str:
    """HTML fit to mail on: only the documented allow-list survives (nh3)."""
    return nh3.clean(
        markup,
        tags=set(MAIL_TAGS),
        attributes=MAIL_ATTRIBUTES,
        filter_style_properties=set(MAIL_STYLES),
        url_schemes=set(MAIL_SCHEMES),
        url_relative="deny",
    ).strip()


class _TextExtractor(HTMLParser):
    def __init__(self, links: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._links = links
        self._href: list[tuple[str, int]] = []  # open links: target, where their text starts

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif self._links and tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCKS:
            self.parts.append("\n")
        if self._links and tag == "a":
            self._href.append((dict(attrs).get("href") or "", len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self._skip:
            self._skip -= 1
        elif tag in _BLOCKS and not (self._links and tag == "li"):
            self.parts.append("\n")
        if tag == "a" and self._href:
            href, start = self._href.pop()
            shown = "".join(self.parts[start:]).strip()
            target = href.removeprefix("mailto:")
            if href and not href.startswith("cid:") and target != shown:
                self.parts.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str, *, links: bool = False) -> str:
    """Readable plain text from HTML: block elements become line breaks; with `links`,
    list items get a dash and links their address, as a mail client's text part does."""
    parser = _TextExtractor(links)
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser is lenient, but never let a body stop ingest
        return html.unescape(re.sub(r"<[^>]+>", " ", markup))
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
