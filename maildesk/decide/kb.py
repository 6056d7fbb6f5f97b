"""Knowledge-base articles in replies: suggestions by keyword, `#kb NAME` insertion (pure).

A keyword matches whole words in the request, case-insensitively; a keyword of five
letters or more also matches words that begin with it ("print" finds "printer"). A
keyword of several words matches them in that order. The articles themselves are
loaded from Markdown files by `maildesk.service.knowledge_base`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from maildesk.common.errors import NotFound
from maildesk.common.yamlfile import did_you_mean

_WORD = re.compile(r"\w+")
_KB_COMMAND = re.compile(r"^[ \t]*#kb[ \t]+(?P<name>\S+)[ \t]*$", re.IGNORECASE | re.MULTILINE)
PREFIX_MATCH_LETTERS = 5
SUMMARY_CHARS = 300


@dataclass(frozen=True)
class Article:
    """One answer: its name (from the file name), title, keywords and Markdown text."""

    name: str
    title: str
    keywords: tuple[str, ...]
    body: str
    url: str | None = None
    path: Path | None = None

    @cached_property
    def keyword_words(self) -> tuple[tuple[str, ...], ...]:
        """Each keyword as its lower-case words, for matching."""
        return tuple(tuple(words(k)) for k in self.keywords if words(k))

    @property
    def summary(self) -> str:
        """The first paragraph, shortened to about 300 characters, for suggestions."""
        paragraph = next((p for p in re.split(r"\n\s*\n", self.body.strip()) if p.strip()), "")
        text = " ".join(paragraph.split())
        if len(text) <= SUMMARY_CHARS:
            return text
        return text[: SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"


def words(text: str) -> list[str]:
    """Lower-case words of `text` (letters and digits, any script)."""
    return _WORD.findall(text.casefold())


def _matches(keyword: tuple[str, ...], text_words: list[str], vocabulary: set[str]) -> bool:
    if len(keyword) == 1:
        word = keyword[0]
        if word in vocabulary:
            return True
        return len(word) >= PREFIX_MATCH_LETTERS and any(w.startswith(word) for w in vocabulary)
    n = len(keyword)
    return any(tuple(text_words[i : i + n]) == keyword for i in range(len(text_words) - n + 1))


def suggest(text: str, articles: list[Article], limit: int = 3) -> list[Article]:
    """Up to `limit` articles whose keywords occur in `text`, most matching keywords first."""
    text_words = words(text)
    vocabulary = set(text_words)
    scored = []
    for article in articles:
        hits = [k for k in article.keyword_words if _matches(k, text_words, vocabulary)]
        if hits:
            # More matching keywords first; then more specific (longer) ones; then by name.
            scored.append((-len(hits), -sum(len(k) for k in hits), article.name, article))
    scored.sort(key=lambda s: s[:3])
    return [s[3] for s in scored[:limit]]


def find(name: str, articles: list[Article]) -> Article:
    """The article called `name` (case-insensitive); NotFound suggesting a close name."""
    wanted = name.strip().lower()
    for article in articles:
        if article.name == wanted:
            return article
    hint = did_you_mean(wanted, [a.name for a in articles])
    raise NotFound(f"no knowledge-base article '{name}'{hint}; see `maildesk kb list`")


def article_text(article: Article) -> str:
    """The article as text to insert into a reply: its Markdown body and, if any, its link."""
    text = article.body.strip()
    return f"{text}\n\n{article.url}" if article.url else text


def expand_kb_commands(text: str, articles: list[Article]) -> tuple[str, list[str], list[str]]:
    """Replace each `#kb NAME` line with the article's text.

    Returns (new text, names inserted, problems); an unknown name stays as it was and
    is reported, so the agent can be told instead of the customer seeing a gap.
    """
    inserted: list[str] = []
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        try:
            article = find(match.group("name"), articles)
        except NotFound as exc:
            problems.append(str(exc))
            return match.group(0)
        inserted.append(article.name)
        return article_text(article)

    return _KB_COMMAND.sub(replace, text), inserted, problems


def kb_context(suggested: list[Article]) -> dict[str, Any]:
    """The `kb_articles` template variable: name, title, summary and url of each article."""
    return {
        "kb_articles": [
            {"name": a.name, "title": a.title, "summary": a.summary, "url": a.url or ""}
            for a in suggested
        ]
    }
