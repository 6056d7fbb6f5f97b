"""rules.yaml: queues, agents, SLA policies and ordered routing rules."""

from maildesk.rules.definitions import Agent, Queue, Routing, RuleFacts, SlaPolicy
from maildesk.rules.engine import Explanation, RuleSet
from maildesk.rules.load import load_rules, parse_rules

__all__ = [
    "Agent",
    "Explanation",
    "Queue",
    "Routing",
    "RuleFacts",
    "RuleSet",
    "SlaPolicy",
    "load_rules",
    "parse_rules",
]
