"""Giving memory freed after a burst of work back to the operating system.

Python hands big objects (message bodies, rows of a batch) to the C allocator, and
glibc keeps what they free for reuse instead of returning it: after a backlog an idle
daemon held ~30 MB it no longer needed. `malloc_trim` returns it; elsewhere nothing
happens.

glibc also gives each new thread a heap of its own (up to 8 per core), and what one
thread freed stays in its heap, in pages a few live objects keep: a daemon's threads
(parser round trips, SMTP, the blocking pool) held ~25 MB that way after a burst.
The daemon lets all threads share two heaps; its threads take turns on the GIL anyway.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@functools.cache
def _glibc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc
        return None


def release_freed_memory() -> None:
    """Return the C heap's free pages to the system (glibc; a few ms; elsewhere a no-op)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def share_thread_heaps(count: int = 2) -> None:
    """Let glibc keep at most `count` heaps for all threads of this process; call before
    any thread starts. MALLOC_ARENA_MAX in the environment wins (elsewhere a no-op)."""
    libc = _glibc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(M_ARENA_MAX, count)
