"""The text a stored message is indexed by (see `store.search`)."""

from __future__ import annotations

from maildesk.intake.message import ParsedMessage
from maildesk.intake.search_document import body_document


def message_document(ref: str, msg: ParsedMessage) -> str:
    """The ticket's ref, the subject, names and addresses, attachment names and text."""
    return "\n".join(part for part in (ref, body_document(msg)) if part)
