"""The text a stored message is indexed by (see `store.search`)."""

from __future__ import annotations

from maildesk.intake.filenames import safe_filename
from maildesk.intake.message import ParsedMessage

# Past this a body is not indexed: a tsvector holds at most 1 MB, and nobody searches
# for a word deep in a pasted log.
MAX_INDEXED_CHARS = 100_000


def message_document(ref: str, msg: ParsedMessage) -> str:
    """The ticket's ref, the subject, names and addresses, attachment names and text."""
    people = [str(a) for a in (msg.sender, *msg.to, *msg.cc) if a is not None]
    names = [safe_filename(a.filename) for a in msg.attachments]
    parts = [ref, msg.subject, *people, *names, msg.text[:MAX_INDEXED_CHARS]]
    return "\n".join(part for part in parts if part)
