"""Knowledge base: Markdown articles with keywords, suggestions in the acknowledgement, #kb NAME."""

from __future__ import annotations

import email
import email.policy
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from maildesk.cli import cli
from maildesk.common.errors import NotFound
from maildesk.decide.kb import expand_kb_commands, find, suggest
from maildesk.outgoing.render_jobs import render_entry
from maildesk.service.knowledge_base import (
    KnowledgeBase,
    KnowledgeBaseError,
    load_articles,
    parse_article,
)
from maildesk.store.models import OutboxEntry
from tests.conftest import make_mail

ARTICLES = {
    "reset-password.md": """---
title: Resetting your password
keywords: [password, "forgot password", login, sign in]
url: https://help.example.com/password
---
Open the sign-in page and choose **Forgot password**. We send a link that works
for one hour.

If the link has expired, ask for a new one.
""",
    "printer.md": """---
title: The printer does not print
keywords: print, toner, paper jam
---
Switch it off and on again. Then check the toner.
""",
    "vpn.md": """---
keywords: [vpn, remote access]
---
# Connecting to the VPN

Install the client from the portal.
""",
    "billing/invoice-copy.md": """---
title: A copy of an invoice
keywords: [invoice, счёт, billing]
---
Every invoice is in the customer portal under Billing.
""",
}


def write_kb(folder: Path, articles: dict[str, str] = ARTICLES) -> Path:
    for name, text in articles.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def articles(tmp_path):
    return load_articles(write_kb(tmp_path / "kb"))


def test_articles_load_with_title_keywords_and_url(articles):
    assert [a.name for a in articles] == ["invoice-copy", "printer", "reset-password", "vpn"]
    password = find("reset-password", articles)
    assert password.title == "Resetting your password"
    assert password.keywords == ("password", "forgot password", "login", "sign in")
    assert password.url == "https://help.example.com/password"
    assert password.body.startswith("Open the sign-in page")
    assert password.summary == (
        "Open the sign-in page and choose **Forgot password**. We send a link that works for one hour."
    )
    assert find("printer", articles).keywords == ("print", "toner", "paper jam")  # comma list
    assert find("VPN", articles).title == "Connecting to the VPN"  # from the first heading


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I forgot my password and cannot log in", ["reset-password"]),
        ("Sign in fails: FORGOT PASSWORD link broken, login impossible", ["reset-password"]),
        ("The printer prints only blank pages", ["printer"]),  # 'print' begins 'printer'
        ("Paper jam again, and I need a copy of the invoice", ["printer", "invoice-copy"]),
        ("Пришлите, пожалуйста, счёт за ноябрь", ["invoice-copy"]),
        (
            "Password reset, VPN remote access down, printer toner empty, invoice missing",
            ["vpn", "printer", "invoice-copy"],
        ),
        (
            "The vpns are fine; the jam is paper",
            [],
        ),  # short keywords match whole words only; phrases in order
        ("Hello, how are you?", []),
    ],
)
def test_suggest(articles, text, expected):
    assert [a.name for a in suggest(text, articles)] == expected


def test_suggestions_rank_by_matching_keywords(articles):
    found = suggest("login password forgot password; printer", articles, limit=2)
    assert [a.name for a in found] == ["reset-password", "printer"]


def test_find_unknown_article_suggests_a_name(articles):
    with pytest.raises(NotFound, match="did you mean 'printer'"):
        find("printr", articles)


def test_kb_command_inserts_the_article(articles):
    reply = "Hello Jane,\n\n#kb reset-password\n  #KB Printer  \n#kb nonsense\nBest, Alice"
    text, inserted, problems = expand_kb_commands(reply, articles)
    assert inserted == ["reset-password", "printer"]
    assert "choose **Forgot password**" in text and "https://help.example.com/password" in text
    assert "Switch it off and on again." in text
    assert "#kb nonsense" in text and "no knowledge-base article 'nonsense'" in problems[0]
    assert text.startswith("Hello Jane,") and text.endswith("Best, Alice")


def test_invalid_articles_are_all_reported_with_lines(tmp_path):
    folder = write_kb(
        tmp_path / "kb",
        {
            "a.md": "---\ntitle: A\nkeyword: [x]\n---\nbody\n",
            "b.md": "---\ntitle: B\nkeywords: {x: 1}\n---\nbody\n",
            "c.md": "---\ntitle: C\nbody without an end\n",
            "Bad Name.md": "body\n",
            "d.md": "---\ntitle: D\n---\n",
            "sub/d.md": "---\ntitle: D again\n---\n",
        },
    )
    with pytest.raises(KnowledgeBaseError) as caught:
        load_articles(folder)
    text = str(caught.value)
    assert "a.md:3: unknown key 'keyword' — did you mean 'keywords'?" in text
    assert "b.md:3: keywords must be a list" in text
    assert "c.md:1: front matter starts with --- but never ends" in text
    assert "Bad Name.md: file name must be lower-case" in text
    assert "another article is already named 'd'" in text
    assert len(caught.value.problems) == 5


def test_parse_article_without_front_matter():
    article = parse_article("Just text.\n", "plain")
    assert (article.title, article.keywords, article.body) == ("Plain", (), "Just text.")


def test_knowledge_base_reloads_and_keeps_the_last_good_articles(tmp_path):
    folder = write_kb(tmp_path / "kb", {"one.md": "---\nkeywords: [alpha]\n---\nOne\n"})
    kb = KnowledgeBase(folder)
    assert [a.name for a in kb.suggest("alpha")] == ["one"]
    (folder / "two.md").write_text("---\nkeywords: [beta]\n---\nTwo\n")
    assert [a.name for a in kb.suggest("beta")] == ["two"]
    broken = folder / "two.md"
    broken.write_text("---\nkeywords: [beta\n---\n")
    stamp = time.time() + 5
    os.utime(broken, (stamp, stamp))
    assert [a.name for a in kb.suggest("beta")] == ["two"]  # broken edit: last good kept


@pytest.fixture
def kb_desk(make_desk, tmp_path):
    write_kb(tmp_path / "desk" / "kb")
    return make_desk(extra="knowledge_base: kb\n")


def _ack(desk, ref):
    with desk.sessions() as s:
        entry = s.scalars(
            select(OutboxEntry).where(
                OutboxEntry.template == "ack", OutboxEntry.message_id.startswith(f"{ref.lower()}.")
            )
        ).one()
        raw = render_entry(entry, desk.renderer, desk.config, desk.blobs)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_acknowledgement_suggests_matching_articles(kb_desk):
    result = kb_desk.pipeline.process_one(
        make_mail(subject="Cannot log in", body="I forgot my password. Also the printer is jammed.")
    )
    text, html = _ack(kb_desk, result.ticket_ref)
    assert "While you wait, these articles may already answer your question:" in text
    assert "* Resetting your password - https://help.example.com/password" in text
    assert "* The printer does not print" in text
    assert "Connecting to the VPN" not in text
    assert '<a href="https://help.example.com/password">Resetting your password</a>' in html


def test_acknowledgement_without_a_match_has_no_suggestions(kb_desk):
    result = kb_desk.pipeline.process_one(make_mail(subject="Hello", body="Just saying hi."))
    text, html = _ack(kb_desk, result.ticket_ref)
    assert "While you wait" not in text and "While you wait" not in html
    assert "We have opened ticket" in text


def test_kb_commands_and_check(kb_desk):
    config = ["--config", kb_desk.config.source]
    runner = CliRunner()
    listed = runner.invoke(cli, [*config, "kb", "list"])
    assert (
        listed.exit_code == 0
        and "reset-password" in listed.output
        and "Resetting your password" in listed.output
    )
    shown = runner.invoke(cli, [*config, "kb", "show", "printer"])
    assert shown.output.strip() == "Switch it off and on again. Then check the toner."
    suggested = runner.invoke(cli, [*config, "kb", "suggest", "my VPN is down"])
    assert suggested.output.strip() == "vpn  Connecting to the VPN"
    checked = runner.invoke(cli, [*config, "check"])
    assert "ok   knowledge base: 4 articles" in checked.output
