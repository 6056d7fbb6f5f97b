"""Stage 3, rules: rules.yaml loaded, validated and compiled; evaluated per message.

Queues, agents, calendars, SLA policies and ordered routing rules; `RuleSet.evaluate`
routes a message, `RuleSet.explain` says why. May import: common, intake, triage.
"""

from maildesk.rules.assign import AssignmentFactsNeeded
from maildesk.rules.definitions import Agent, Queue, Routing, RuleFacts, SlaPolicy
from maildesk.rules.engine import Explanation, RuleSet
from maildesk.rules.load import load_rules, parse_rules

__all__ = [
    "Agent",
    "AssignmentFactsNeeded",
    "Explanation",
    "Queue",
    "Routing",
    "RuleFacts",
    "RuleSet",
    "SlaPolicy",
    "load_rules",
    "parse_rules",
]
