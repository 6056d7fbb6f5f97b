"""Build small rule sets and messages for the rules tests."""

from __future__ import annotations

import textwrap
from dataclasses import fields, replace
from datetime import UTC, datetime

from maildesk.common.domain import TicketState
from maildesk.intake.message import ParsedMessage
from maildesk.intake.parse import parse_message
from maildesk.rules import RuleFacts, RuleSet, parse_rules
from tests.conftest import make_mail

# Monday 23 Nov 2026, 11:00 in Berlin: the office calendar is open.
MONDAY_MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

BASE = """\
version: 1
default:
  queue: general
  priority: normal
  auto_reply: ack
  calendar: office
calendars:
  office:
    timezone: Europe/Berlin
    hours: {mon-fri: "09:00-17:00"}
    holidays: [2026-12-25]
sla:
  policies:
    urgent: {first_response: 1h, resolution: 4h}
    standard: {first_response: 4h, resolution: 16h}
  by_priority: {urgent: urgent, normal: standard}
queues:
  general: {agents: [alice, bob, erin]}
  billing: {agents: [carol]}
agents:
  alice: {address: alice@example.com, name: Alice}
  bob: {address: bob@example.com, name: Bob}
  erin: {address: erin@example.com, name: Erin, away: true}
  carol: {address: carol@example.com, name: Carol}
"""


def rules_text(rules: str = "", base: str = BASE) -> str:
    """BASE plus a `rules:` section written as YAML text."""
    body = textwrap.dedent(rules).strip("\n")
    return base + ("rules:\n" + textwrap.indent(body, "  ") + "\n" if body else "")


def ruleset(rules: str = "", base: str = BASE) -> RuleSet:
    """The rule set; its evaluate() also checks the rule index (see CheckedRuleSet)."""
    return CheckedRuleSet.of(parse_rules(rules_text(rules, base)))


class CheckedRuleSet(RuleSet):
    """A RuleSet whose evaluate() decides both with the rule index and by testing every
    rule in turn, and fails unless both agree: every rules test is a differential test."""

    @classmethod
    def of(cls, rules: RuleSet) -> CheckedRuleSet:
        return cls(**{f.name: getattr(rules, f.name) for f in fields(RuleSet)})

    def evaluate(self, msg: ParsedMessage, *, ticket: TicketState | None, facts: RuleFacts):
        routing = super().evaluate(msg, ticket=ticket, facts=facts)
        every_rule = RuleSet.evaluate(replace(self, indexed=False), msg, ticket=ticket, facts=facts)
        assert routing == every_rule, f"the index changed the decision: {routing} != {every_rule}"
        return routing


def message(**kwargs) -> ParsedMessage:
    """A parsed message; keyword arguments as for conftest.make_mail."""
    return parse_message(make_mail(**kwargs))


def facts(now: datetime = MONDAY_MORNING, **kwargs) -> RuleFacts:
    return RuleFacts(now=now, **kwargs)


def one_rule(when: str) -> RuleSet:
    """A rule set whose only rule, 'probe', has `when` (a YAML flow mapping)."""
    return ruleset(f"- name: probe\n  when: {when}\n  then: {{tags: [hit]}}\n")


def fires(when: str, msg: ParsedMessage | None = None, **fact_kwargs) -> bool:
    """Does a rule with `when` fire on `msg` (default: a plain message)?"""
    rules = one_rule(when)
    routing = rules.evaluate(msg or message(), ticket=None, facts=facts(**fact_kwargs))
    return routing.hits == ["probe"]
