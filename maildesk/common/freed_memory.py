"""Giving memory freed after a burst of work back to the operating system.

Python hands big objects (message bodies, rows of a batch) to the C allocator, and
glibc keeps what they free for reuse instead of returning it: after a backlog an idle
daemon held ~30 MB it no longer needed. `malloc_trim` returns it; elsewhere nothing
happens.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any


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
