"""rules.yaml: queues, agents, SLA policies and ordered routing rules."""

from maildesk.rules.load import RuleSet, load_rules
from maildesk.rules.model import Agent, Queue, Routing, RuleFacts

__all__ = ["Agent", "Queue", "Routing", "RuleFacts", "RuleSet", "load_rules"]
