"""A message's fields as `when` conditions see them, each computed at most once."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from maildesk.common.business_hours import Calendar
from maildesk.intake.message import ParsedMessage
from maildesk.rules.definitions import RuleFacts
from maildesk.rules.text_match import PREPARE

BODY_LIMIT = 1024 * 1024  # body conditions read the first 1 MiB of text
_RECIPIENT_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to")

# Text fields and whether their values are addresses (which allows `domain`).
TEXT_FIELDS: dict[str, bool] = {
    "from": True,
    "from_name": False,
    "to": True,
    "cc": True,
    "recipient": True,
    "reply_to": True,
    "subject": False,
    "body": False,
    "attachment_type": False,
    "attachment_name": False,
    "mailbox": False,
    "mailbox_queue": False,
    "queue": False,
    "language": False,
}


def header_key(name: str) -> str:
    """Where a header's prepared values are kept in MessageView._prepared."""
    return "header:" + name.lower()


class MessageView:
    """A message's fields as conditions see them; each is computed at most once."""

    def __init__(self, msg: ParsedMessage, facts: RuleFacts, agent_addresses: frozenset[str]):
        self.msg = msg
        self.facts = facts
        self.agent_addresses = agent_addresses
        self._prepared: dict[tuple[str, str], list[Any]] = {}
        self._open: dict[str, bool] = {}
        # The queue chosen so far; the engine moves it as matching rules set a queue.
        self.current_queue: str | None = None

    def values(self, name: str, prep: str) -> list[Any]:
        """Text field `name`'s values, prepared as a matcher wants them (see PREPARE)."""
        key = (name, prep)
        try:
            return self._prepared[key]
        except KeyError:
            pass
        result = [PREPARE[prep](v) for v in getattr(self, f"f_{name}")]
        if name != "queue":  # the queue moves during evaluation, so it is never kept
            self._prepared[key] = result
        return result

    def header(self, name: str, prep: str) -> list[Any]:
        """Header `name`'s values, prepared as a matcher wants them."""
        key = (header_key(name), prep)
        try:
            return self._prepared[key]
        except KeyError:
            pass
        result = [PREPARE[prep](v) for v in self.msg.header_all(name)]
        self._prepared[key] = result
        return result

    def is_open(self, name: str, calendar: Calendar) -> bool:
        """Is calendar `name` open at facts.now (asked once per message)?"""
        if name not in self._open:
            self._open[name] = calendar.is_open(self.facts.now)
        return self._open[name]

    @cached_property
    def f_from(self) -> list[str]:
        return [self.msg.from_addr] if self.msg.from_addr else []

    @cached_property
    def f_from_name(self) -> list[str]:
        return [self.msg.sender.name] if self.msg.sender and self.msg.sender.name else []

    @cached_property
    def f_to(self) -> list[str]:
        return [a.address for a in self.msg.to]

    @cached_property
    def f_cc(self) -> list[str]:
        return [a.address for a in self.msg.cc]

    @cached_property
    def f_recipient(self) -> list[str]:
        # Bcc'd and aliased mail names the support address only in delivery headers.
        found = [a.address for a in self.msg.recipients]
        for name in _RECIPIENT_HEADERS:
            for value in self.msg.header_all(name):
                found.extend(v.strip("<> ").lower() for v in value.split(",") if "@" in v)
        return list(dict.fromkeys(found))

    @cached_property
    def f_reply_to(self) -> list[str]:
        return [a.address for a in self.msg.reply_to]

    @cached_property
    def f_subject(self) -> list[str]:
        return [self.msg.subject]

    @cached_property
    def f_body(self) -> list[str]:
        return [self.msg.text[:BODY_LIMIT]]

    @cached_property
    def f_attachment_type(self) -> list[str]:
        return [a.content_type for a in self.msg.attachments]

    @cached_property
    def f_attachment_name(self) -> list[str]:
        return [a.filename for a in self.msg.attachments]

    @cached_property
    def f_mailbox(self) -> list[str]:
        return [self.facts.mailbox] if self.facts.mailbox else []

    @cached_property
    def f_mailbox_queue(self) -> list[str]:
        return [self.facts.mailbox_queue] if self.facts.mailbox_queue else []

    @cached_property
    def f_language(self) -> list[str]:
        return [self.facts.language] if self.facts.language else []

    @property
    def f_queue(self) -> list[str]:
        return [self.current_queue] if self.current_queue else []
