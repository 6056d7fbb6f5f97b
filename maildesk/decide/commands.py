"""Commands an agent puts at the top of a reply: `#status pending`, `#assign me`, ...

Parsing is pure and knows nothing of the ticket; checking arguments against the
rules (agents, queues) and applying them happens in the deciding step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from maildesk.common.search_query import QueryError, parse_query

STATUSES = ("open", "pending", "resolved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
# name -> (argument required?, help shown when it is wrong)
KNOWN: dict[str, tuple[bool, str]] = {
    "status": (True, "#status open|pending|resolved|closed"),
    "assign": (True, "#assign me or #assign NAME"),
    "priority": (True, "#priority low|normal|high|urgent"),
    "queue": (True, "#queue NAME"),
    "tag": (True, "#tag WORD"),
    "cc": (True, "#cc ADDRESS"),
    "merge": (True, "#merge REF (e.g. #merge MD-42)"),
    "note": (False, "#note (keeps this reply internal)"),
    "find": (True, '#find WORDS (e.g. #find printer "paper jam")'),
    "send-attachments": (False, "#send-attachments, or #send-attachments NAME for one file"),
}
_LINE = re.compile(r"^#([A-Za-z]+(?:-[A-Za-z]+)*)(?![\w-])[ \t]*(.*?)\s*$")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


@dataclass(frozen=True)
class Command:
    name: str
    argument: str
    line: str


@dataclass
class CommandBlock:
    """The commands found at the top of a reply, what was wrong with them, and the rest."""

    commands: list[Command] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    body: str = ""

    @property
    def internal(self) -> bool:
        return any(c.name == "note" for c in self.commands)

    def named(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]


def parse_commands(text: str) -> CommandBlock:
    """Split leading `#command` lines from the body and check their syntax."""
    block = CommandBlock()
    lines = text.splitlines()
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        match = _LINE.match(line)
        if not line:
            index += 1
            continue
        if not match:
            break
        if match.group(1).lower() == "kb":  # `#kb NAME` is text: the article goes in its place
            kept.append(lines[index])
        else:
            _take(block, match.group(1).lower(), match.group(2), line)
        index += 1
    block.body = "\n".join([*kept, *lines[index:]]).strip("\n")
    return block


def is_command_line(line: str) -> bool:
    """Whether `line` reads as a `#command` line (for cutting them out of an HTML body)."""
    return bool(_LINE.match(line.strip()))


def _take(block: CommandBlock, name: str, argument: str, line: str) -> None:
    if name not in KNOWN:
        known = ", ".join(f"#{n}" for n in KNOWN)
        block.errors.append(f"'{line}': unknown command #{name} (known: {known})")
        return
    needs_argument, usage = KNOWN[name]
    if needs_argument and not argument:
        block.errors.append(f"'{line}': #{name} needs an argument: {usage}")
        return
    problem = _check_syntax(name, argument)
    if problem:
        block.errors.append(f"'{line}': {problem}; use {usage}")
        return
    value = argument.lower() if name in ("status", "priority") else argument
    block.commands.append(Command(name, value, line))


def _check_syntax(name: str, argument: str) -> str:
    if name == "status" and argument.lower() not in STATUSES:
        return f"'{argument}' is not a status"
    if name == "priority" and argument.lower() not in PRIORITIES:
        return f"'{argument}' is not a priority"
    if name == "cc" and not _ADDRESS.match(argument.strip("<>")):
        return f"'{argument}' is not an email address"
    if name == "tag" and not re.fullmatch(r"[\w.-]{1,50}", argument):
        return f"'{argument}' is not a single word"
    if name == "find":
        try:
            parse_query(argument)
        except QueryError as exc:
            return str(exc)
    return ""
