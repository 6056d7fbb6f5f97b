"""Which agents hear about a ticket: its assignee or its queue, its watchers, escalation.

Pure lookups in the rules (agents, queues); every notice that goes to agents picks
its readers here, so "who is told" means the same thing everywhere.
"""

from __future__ import annotations

from maildesk.common.domain import TicketState
from maildesk.intake.message import Address
from maildesk.rules import RuleSet


def agent_address(address: str, rules: RuleSet) -> Address:
    """An address with the agent's name when it is an agent's."""
    agent = rules.agent_by_address(address)
    return Address(agent.name if agent else "", address)


def queue_agents(queue: str, rules: RuleSet) -> list[Address]:
    """The agents a queue lists, except those marked away."""
    q = rules.queues.get(queue)
    keys = q.agents if q else ()
    return [
        Address(rules.agents[k].name, rules.agents[k].address)
        for k in keys
        if k in rules.agents and not rules.agents[k].away
    ]


def assignee_or_queue_of(assignee: str | None, queue: str, rules: RuleSet) -> list[Address]:
    """The assignee if there is one, else the queue's agents."""
    if assignee:
        return [agent_address(assignee, rules)]
    return queue_agents(queue, rules)


def assignee_or_queue(ticket: TicketState, rules: RuleSet) -> list[Address]:
    """Who works on `ticket`: its assignee, else its queue's agents."""
    return assignee_or_queue_of(ticket.assignee, ticket.queue, rules)


def watchers(ticket: TicketState, rules: RuleSet) -> list[Address]:
    """The ticket's watchers (agents or plain addresses a rule added)."""
    return [
        agent_address(address, rules)
        for address, role in ticket.participants.items()
        if role == "watcher"
    ]


def ticket_agents(ticket: TicketState, rules: RuleSet) -> list[Address]:
    """Every agent on the ticket: assignee, the queue's agents and agent watchers."""
    found: dict[str, Address] = {}
    if ticket.assignee:
        found[ticket.assignee] = agent_address(ticket.assignee, rules)
    for agent in queue_agents(ticket.queue, rules):
        found.setdefault(agent.address, agent)
    for watcher in watchers(ticket, rules):
        if rules.agent_by_address(watcher.address) is not None:
            found.setdefault(watcher.address, watcher)
    return list(found.values())


def escalation_target(queue: str, rules: RuleSet) -> list[Address]:
    """The queue's escalation target: an agent, or the agents of another queue."""
    q = rules.queues.get(queue)
    target = q.escalation if q else None
    if not target:
        return []
    if target in rules.agents:
        agent = rules.agents[target]
        return [Address(agent.name, agent.address)]
    return queue_agents(target, rules)


def adding(people: list[Address], more: list[Address]) -> list[Address]:
    """`people` plus those of `more` not among them yet, in order."""
    told = {p.address for p in people}
    result = list(people)
    for person in more:
        if person.address not in told:
            told.add(person.address)
            result.append(person)
    return result
