"""The reply corpus (tests/corpus/replies, sources in SOURCES.md) run through the deciding step.

Each case is an agent's reply body (`.txt`, or `.html` for an HTML-only mail) and the
text the customer should receive (`.expected`). `relayed` sends the body as an agent's
mail about a ticket and returns what the `agent_reply` notice carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from maildesk.decide.inbound import decide
from maildesk.intake.parse import parse_message
from maildesk.triage.reply_tokens import signed_reply_address
from tests.decidekit import ALICE, KEYS, context, ticket

CORPUS = Path(__file__).parent / "corpus" / "replies"


@dataclass(frozen=True)
class ReplyCase:
    name: str
    body: str
    html: bool
    expected: str


def cases() -> list[ReplyCase]:
    """Every case of the corpus, by name."""
    found = []
    for expected in sorted(CORPUS.glob("*.expected")):
        stem = expected.with_suffix("")
        html = stem.with_suffix(".html").exists()
        body = stem.with_suffix(".html" if html else ".txt").read_text(encoding="utf-8")
        found.append(ReplyCase(stem.name, body, html, expected.read_text(encoding="utf-8")))
    return found


def raw_reply(case: ReplyCase) -> bytes:
    """The case as the agent's mail client would send it, to the ticket's reply address."""
    on = ticket()
    msg = EmailMessage()
    msg["From"] = f"Alice <{ALICE}>"
    msg["To"] = signed_reply_address("support@example.com", on.ref, ALICE, KEYS.current)
    msg["Subject"] = f"Re: [{on.ref}] {on.subject}"
    msg["Message-ID"] = f"<{case.name}@example.com>"
    msg.set_content(case.body, subtype="html" if case.html else "plain")
    return msg.as_bytes()


def relayed(case: ReplyCase) -> str | None:
    """What the customer receives for this reply (None: nothing is sent)."""
    msg = parse_message(raw_reply(case))
    decision = decide(msg, ticket(), context(msg))
    sent = [n.body_text for n in decision.notices if n.template == "agent_reply"]
    return sent[0] if sent else None


def same_answer(got: str | None, expected: str) -> bool:
    """Equal as a reader sees it: the same non-blank lines, ignoring surrounding spaces."""
    return got is not None and _lines(got) == _lines(expected)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]
