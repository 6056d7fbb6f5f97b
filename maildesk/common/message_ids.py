"""Message-IDs in our own domain that nobody can guess.

A guessed Message-ID would thread a stranger's mail into someone's ticket, so they
carry 80 random bits.
"""

from __future__ import annotations

import os
import threading


class _RandomBytes:
    """Cryptographically random bytes, read from the OS a block at a time: Message-IDs
    must not be guessable (a guessed one would thread a stranger's mail into a ticket),
    and one read per 400 of them costs less than one each."""

    def __init__(self, block: int = 4096):
        self.block = block
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a child must never reuse them

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._used + size > len(self._buffer):
                self._buffer, self._used = os.urandom(self.block), 0
            start, self._used = self._used, self._used + size
            return self._buffer[start : self._used]

    def _reset(self) -> None:
        self._buffer, self._used = b"", 0


_random = _RandomBytes()


def new_message_id(ref: str, domain: str) -> str:
    """A unique Message-ID in our own domain (without angle brackets)."""
    return f"{ref.lower()}.{_random.take(10).hex()}@{domain}"
