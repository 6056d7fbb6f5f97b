"""What a stored message is searched by: its text for the index, and (for PostgreSQL)
that text's tsvector, made by the parser child that read the message.

The ticket's ref is not known while a message is read, so the vector is of the rest of
the document; the store puts the ref's own vector in front (`ref || rest`: PostgreSQL
moves the right-hand positions past the left-hand ones, as if they were one text).
"""

from __future__ import annotations

import zlib

from maildesk.common.search_words import folded_words, tsvector_text
from maildesk.intake.filenames import safe_filename
from maildesk.intake.message import ParsedMessage

# Past this a body is not indexed: a tsvector holds at most 1 MB, and nobody searches
# for a word deep in a pasted log.
MAX_INDEXED_CHARS = 100_000


def body_document(msg: ParsedMessage) -> str:
    """The subject, names and addresses, attachment names and text (all but the ref)."""
    people = [str(a) for a in (msg.sender, *msg.to, *msg.cc) if a is not None]
    names = [safe_filename(a.filename) for a in msg.attachments]
    parts = [msg.subject, *people, *names, msg.text[:MAX_INDEXED_CHARS]]
    return "\n".join(part for part in parts if part)


def add_search_vector(msg: ParsedMessage) -> None:
    """Give `msg` (and the message it carries) the tsvector of its body_document, with a
    checksum of that document: whoever changes the message after this (a list post
    given its author's name) changes the document, and `search_vector_of` tells."""
    for each in (msg, msg.attached_message):
        if each is not None:
            document = body_document(each)
            each.search_vector = tsvector_text(folded_words(document))
            each.search_vector_checksum = document_checksum(document)


def search_vector_of(msg: ParsedMessage) -> str:
    """The tsvector of `msg`'s body_document: the parser child's, if made of the
    document as it is now, else made here."""
    document = body_document(msg)
    if msg.search_vector is not None and msg.search_vector_checksum == document_checksum(document):
        return msg.search_vector
    return tsvector_text(folded_words(document))


def document_checksum(document: str) -> int:
    return zlib.crc32(document.encode("utf-8", "surrogatepass"))
