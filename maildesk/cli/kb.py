"""`maildesk kb list|show|suggest`: the knowledge-base articles in `knowledge_base:`."""

from __future__ import annotations

import click

from maildesk.cli.common import CliContext, echo, pass_cli, print_rows
from maildesk.common.errors import MaildeskError
from maildesk.decide.kb import Article, article_text, find, suggest
from maildesk.service.knowledge_base import load_articles


def _articles(cli: CliContext) -> list[Article]:
    folder = cli.config().knowledge_base
    if folder is None:
        raise MaildeskError(
            "no knowledge base configured; set knowledge_base: to a folder of Markdown files"
        )
    return load_articles(folder)


def _row(a: Article) -> dict:
    return {"name": a.name, "title": a.title, "keywords": ", ".join(a.keywords), "url": a.url}


@click.group()
def kb() -> None:
    """Knowledge-base articles: suggested in acknowledgements, inserted with #kb NAME."""


@kb.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def list_cmd(cli: CliContext, as_json: bool) -> None:
    """List the articles (and check every file)."""
    rows = [_row(a) for a in _articles(cli)]
    columns = [("name", "NAME"), ("title", "TITLE"), ("keywords", "KEYWORDS")]
    print_rows(rows, columns, as_json=as_json, empty="no articles")


@kb.command("show")
@click.argument("name")
@pass_cli
def show_cmd(cli: CliContext, name: str) -> None:
    """Print an article as `#kb NAME` inserts it into a reply."""
    echo(article_text(find(name, _articles(cli))))


@kb.command("suggest")
@click.argument("text")
@pass_cli
def suggest_cmd(cli: CliContext, text: str) -> None:
    """Show which articles an acknowledgement would suggest for TEXT."""
    found = suggest(text, _articles(cli))
    for article in found:
        echo(f"{article.name}  {article.title}")
    if not found:
        echo("no article matches")


COMMANDS = {c.name: c for c in [kb]}
