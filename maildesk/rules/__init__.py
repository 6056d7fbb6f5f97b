"""rules.yaml: queues, agents, SLA policies and ordered routing rules."""

from maildesk.rules.engine import Explanation, RuleSet
from maildesk.rules.load import load_rules, parse_rules
from maildesk.rules.model import Agent, Queue, Routing, RuleFacts, SlaPolicy

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
