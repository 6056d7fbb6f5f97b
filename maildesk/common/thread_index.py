"""Outlook's Thread-Index header (MS-OXOMSG PidTagConversationIndex).

Outlook and Exchange group a conversation by the first 22 bytes of this value (a
start time and a GUID); each reply appends a 5-byte child block. Other clients
ignore it and thread by References.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
ROOT_BYTES = 22
_CHILD_BYTES = 5


def filetime(at: datetime) -> int:
    """`at` in Windows FILETIME units (100 ns since 1601-01-01 UTC)."""
    delta = at - _FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def new_root(started: datetime, key: str) -> bytes:
    """A 22-byte header block: the start time and a GUID derived from `key`."""
    guid = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).digest()
    return (filetime(started) >> 16).to_bytes(6, "big") + guid


def root_from_header(value: str | None) -> str | None:
    """The base64 root of a received Thread-Index, or None when it is not one."""
    if not value:
        return None
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) < ROOT_BYTES or (len(data) - ROOT_BYTES) % _CHILD_BYTES:
        return None
    return base64.b64encode(data[:ROOT_BYTES]).decode("ascii")


def thread_index(root: bytes, depth: int, at: datetime) -> str:
    """The Thread-Index of a message `depth` replies below the conversation's root."""
    start = int.from_bytes(root[:6], "big") << 16
    delta = max(filetime(at) - start, 0)
    # Two encodings of the time since the root: fine-grained up to ~1.7 years, coarse after.
    code, bits = (0, delta >> 18) if delta < 1 << 49 else (1, delta >> 23)
    head = ((code << 31) | (bits & 0x7FFFFFFF)).to_bytes(4, "big")
    children = b"".join(head + bytes([n % 256]) for n in range(max(depth, 0)))
    return base64.b64encode(root[:ROOT_BYTES] + children).decode("ascii")


def decode_root(value: str | None) -> bytes | None:
    """A stored base64 Thread-Index root as bytes (None when absent or damaged)."""
    if not value:
        return None
    try:
        data = base64.b64decode(value)
    except ValueError:
        return None
    return data if len(data) == ROOT_BYTES else None


def ticket_thread_root(thread_index: str | None, created_at: datetime, message_id: str) -> str:
    """The ticket's Outlook conversation root (base64): the request's own, else made from it."""
    root = decode_root(thread_index) or new_root(created_at, message_id)
    return base64.b64encode(root).decode("ascii")
