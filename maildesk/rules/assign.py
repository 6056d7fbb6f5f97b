"""Assignment strategies: pick an agent of a queue from facts, without I/O.

Both strategies walk the queue's agents in order, starting after the agent who got
the queue's previous ticket, and skip agents marked away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from maildesk.rules.definitions import Agent


class AssignmentFactsNeeded(Exception):
    """A strategy must choose among several agents, and the facts (open tickets per
    agent, each queue's last assignee) were not given: load them and evaluate again."""


def rotation(agents: Sequence[Agent], last: str | None) -> list[Agent]:
    """Available agents in turn order: the one after `last` (an address) first."""
    start = 0
    for index, agent in enumerate(agents):
        if agent.address == last:
            start = index + 1
            break
    ordered = [*agents[start:], *agents[:start]]
    return [a for a in ordered if not a.away]


def round_robin(agents: Sequence[Agent], last: str | None) -> Agent | None:
    """The next available agent after `last`."""
    turn = rotation(agents, last)
    return turn[0] if turn else None


def least_open(
    agents: Sequence[Agent], open_counts: Mapping[str, int], last: str | None
) -> Agent | None:
    """The available agent with the fewest open tickets; ties go by turn order."""
    turn = rotation(agents, last)
    if not turn:
        return None
    return min(turn, key=lambda a: (open_counts.get(a.address, 0), turn.index(a)))


def pick(
    strategy: str,
    agents: Sequence[Agent],
    open_counts: Mapping[str, int],
    last: str | None,
) -> Agent | None:
    """Apply `strategy` (round_robin or least_open)."""
    if strategy == "round_robin":
        return round_robin(agents, last)
    if strategy == "least_open":
        return least_open(agents, open_counts, last)
    raise ValueError(f"unknown assignment strategy {strategy!r}")
