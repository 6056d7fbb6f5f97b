"""The knowledge base's files: one Markdown answer per file, reloaded when they change.

Each `*.md` file in the configured folder (subfolders too) is one article, named after
its file (`reset-password.md` is `reset-password`). YAML front matter between `---`
lines gives its `title`, its `keywords` and optionally a public `url`:

    ---
    title: Resetting your password
    keywords: [password, reset, "forgot password", login]
    url: https://help.example.com/password
    ---
    Open the sign-in page and choose **Forgot password**...

A keyword matches whole words in the request, case-insensitively; a keyword of five
letters or more also matches words that begin with it ("print" finds "printer"). A
keyword of several words matches them in that order.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from maildesk.common.errors import FileProblems, Problem
from maildesk.common.yamlfile import did_you_mean, load_yaml
from maildesk.decide.kb import Article, find, suggest

log = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_FIELDS = {"title", "keywords", "url"}


class KnowledgeBaseError(FileProblems):
    """One or more knowledge-base articles are invalid; every problem is listed."""


def parse_article(text: str, name: str, path: Path | None = None) -> Article:
    """An article from the text of its file; KnowledgeBaseError naming the line if invalid."""
    where = str(path or f"{name}.md")
    if not NAME.match(name):
        raise KnowledgeBaseError(
            "knowledge base",
            [Problem(where, None, "file name must be lower-case letters, digits, - or _ "
                     "(it is the NAME agents type after #kb)")],
        )  # fmt: skip
    meta: dict[str, Any] = {}
    body = text
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
        if end is None:
            raise KnowledgeBaseError(
                "knowledge base", [Problem(where, 1, "front matter starts with --- but never ends")]
            )
        meta = _front_matter("\n".join(lines[1:end]), where)
        body = "\n".join(lines[end + 1 :])
    body = body.strip("\n")
    title = meta.get("title") or _first_heading(body) or name.replace("-", " ").capitalize()
    keywords = tuple(meta.get("keywords") or ())
    return Article(
        name=name,
        title=str(title),
        keywords=keywords,
        body=body,
        url=meta.get("url"),
        path=path,
    )


def _front_matter(text: str, where: str) -> dict[str, Any]:
    doc, problems = load_yaml(text, where)
    shifted = [Problem(p.file, p.line + 1 if p.line else None, p.message) for p in problems]
    data = doc.data if isinstance(doc.data, dict) else {}
    if doc.data is not None and not isinstance(doc.data, dict):
        shifted.append(Problem(where, 2, "front matter must be a mapping (title:, keywords:)"))

    def problem(key: str, message: str) -> Problem:
        line = doc.line_of((key,))
        return Problem(where, line + 1 if line else None, message)

    for key in data:
        if key not in _FIELDS:
            shifted.append(problem(key, f"unknown key '{key}'{did_you_mean(str(key), _FIELDS)}"))
    keywords = data.get("keywords", [])
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",") if k.strip()]
        data["keywords"] = keywords
    if not isinstance(keywords, list) or not all(isinstance(k, str | int) for k in keywords):
        shifted.append(problem("keywords", "keywords must be a list of words or phrases"))
    else:
        data["keywords"] = [str(k) for k in keywords]
    for key in ("title", "url"):
        if key in data and not isinstance(data[key], str):
            shifted.append(problem(key, f"{key} must be text"))
    if shifted:
        raise KnowledgeBaseError("knowledge base", shifted)
    return data


def _first_heading(body: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
    return match.group(1).strip() if match else None


def load_articles(folder: Path) -> list[Article]:
    """Every article under `folder`, sorted by name; all problems are raised together."""
    if not folder.is_dir():
        raise KnowledgeBaseError(
            "knowledge base", [Problem(str(folder), None, "folder not found (knowledge_base:)")]
        )
    articles: dict[str, Article] = {}
    problems: list[Problem] = []
    for path in sorted(folder.rglob("*.md")):
        name = path.stem.lower()
        try:
            article = parse_article(path.read_text(encoding="utf-8"), name, path)
        except KnowledgeBaseError as exc:
            problems += exc.problems
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), None, f"cannot read: {exc}"))
            continue
        if name in articles:
            problems.append(
                Problem(str(path), None, f"another article is already named '{name}' "
                        f"({articles[name].path}); rename one")
            )  # fmt: skip
            continue
        articles[name] = article
    if problems:
        raise KnowledgeBaseError("knowledge base", problems)
    return [articles[n] for n in sorted(articles)]


class KnowledgeBase:
    """The articles in a folder, reloaded when a file changes; a broken edit keeps the last
    good articles (and is logged), as rules.yaml does."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._stamp: tuple[tuple[str, int], ...] | None = None
        self._articles: list[Article] = []
        self.articles()

    def articles(self) -> list[Article]:
        """The current articles."""
        stamp = self._current_stamp()
        if stamp != self._stamp:
            try:
                self._articles = load_articles(self.folder)
            except KnowledgeBaseError as exc:
                if self._stamp is None:
                    raise
                log.error("knowledge base not reloaded, keeping the last good articles: %s", exc)
            self._stamp = stamp
        return self._articles

    def suggest(self, text: str, limit: int = 3) -> list[Article]:
        return suggest(text, self.articles(), limit)

    def find(self, name: str) -> Article:
        return find(name, self.articles())

    def _current_stamp(self) -> tuple[tuple[str, int], ...]:
        try:
            return tuple((str(p), p.stat().st_mtime_ns) for p in sorted(self.folder.rglob("*.md")))
        except OSError:
            return ()
