"""Build tickets, messages and contexts in memory for unit tests of the deciding step.

The desk: queue `general` (alice, bob, erin who is away) and `billing` (carol), the
SLA policies of tests.rulekit.BASE, support@example.com as our own address. Tickets
default to MD-7, opened by customer@example.org at CREATED, open, normal priority,
standard SLA, in `general` with nobody assigned.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from maildesk.common.config import TicketsConfig
from maildesk.common.domain import Priority, Status, TicketState
from maildesk.decide.decision import Change, DecideContext, Decision, Notice
from maildesk.decide.inbound import decide
from maildesk.intake.message import ParsedMessage
from maildesk.rules import RuleFacts, RuleSet
from maildesk.triage.reply_tokens import ReplyKeys, signed_reply_address
from maildesk.triage.screen import screen_message
from tests.rulekit import MONDAY_MORNING, message, ruleset

NOW = MONDAY_MORNING  # Monday 23 Nov 2026, 10:00 UTC (11:00 in Berlin, office open)
CREATED = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the same morning, 09:00 in Berlin
CUSTOMER = "customer@example.org"
ALICE, BOB, CAROL, ERIN = (f"{n}@example.com" for n in ("alice", "bob", "carol", "erin"))
OWN = frozenset({"support@example.com"})
KEYS = ReplyKeys(b"decidekit reply secret")  # signs agents' reply addresses
RULES = ruleset()
# What the standard policy gives a ticket opened at CREATED (Berlin office hours).
STANDARD_FIRST_DUE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STANDARD_RESOLUTION_DUE = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def ticket(**fields: Any) -> TicketState:
    """An open MD-7 from the customer; keyword arguments replace any field."""
    base = TicketState(
        id=7,
        ref="MD-7",
        subject="Printer on fire",
        status=Status.OPEN,
        priority=Priority.NORMAL,
        queue="general",
        assignee=None,
        requester=CUSTOMER,
        requester_name="Customer",
        created_at=CREATED,
        updated_at=CREATED,
        message_id="md-7.00112233445566778899@example.com",
        sla_policy="standard",
        first_response_due=STANDARD_FIRST_DUE,
        resolution_due=STANDARD_RESOLUTION_DUE,
    )
    return replace(base, **fields)


def context(
    msg: ParsedMessage,
    *,
    rules: RuleSet | None = None,
    now: datetime = NOW,
    tickets: dict[str, Any] | None = None,
    **options: Any,
) -> DecideContext:
    """The context the pipeline would build, with the message screened as it would be."""
    screening = screen_message(msg, own_domain="example.com", own_addresses=OWN)
    options.setdefault("reply_keys", KEYS)
    return DecideContext(
        tickets=TicketsConfig(**(tickets or {})),
        rules=rules or RULES,
        now=now,
        screening=screening,
        facts=RuleFacts(now=now),
        own_addresses=OWN,
        **options,
    )


def decide_mail(
    on: TicketState | None = None,
    *,
    rules: RuleSet | None = None,
    tickets: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    **mail: Any,
) -> Decision:
    """Decide a message built from `mail` (as for conftest.make_mail) landing on `on`."""
    msg = message(**mail)
    return decide(msg, on, context(msg, rules=rules, tickets=tickets, **(options or {})))


def agent_writes(
    body: str, on: TicketState | None = None, sender: str = ALICE, **kw: Any
) -> Decision:
    """An agent's mail about `on` (default: the plain ticket) with `body`, sent to the
    signed reply address of a notification about it (as a reply from a mail client is)."""
    on = on or ticket()
    subject = kw.pop("subject", f"Re: [{on.ref}] Printer on fire")
    kw.setdefault("to", signed_reply_address("support@example.com", on.ref, sender, KEYS.current))
    return decide_mail(on, sender=sender, subject=subject, body=body, **kw)


def notices(decision: Decision, template: str) -> list[Notice]:
    return [n for n in decision.notices if n.template == template]


def one_notice(decision: Decision, template: str) -> Notice:
    """The only notice made from `template`."""
    found = notices(decision, template)
    assert len(found) == 1, [n.template for n in decision.notices]
    return found[0]


def templates(decision: Decision) -> list[str]:
    return [n.template for n in decision.notices]


def readers(notice: Notice) -> list[str]:
    """The addresses a notice goes to (To only)."""
    return [a.address for a in notice.to]


def changed(decision: Decision) -> dict[str, Any]:
    """Field -> new value for each change except tags (see `tags_added`)."""
    return {c.field: c.value for c in decision.changes if c.field != "tag"}


def tags_added(decision: Decision) -> list[str]:
    return [c.value for c in decision.changes if c.field == "tag"]


def change(name: str, value: Any, reason: str = "test", *, quiet: bool = False) -> Change:
    return Change(name, value, reason, quiet)
