"""After a burst, memory the daemon freed goes back to the system (glibc)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maildesk.common.freed_memory import _glibc, release_freed_memory


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists() or _glibc() is None, reason="glibc")
def test_memory_freed_after_a_burst_is_returned():
    # Bodies of a few KB each, as a batch of parsed mail holds them; freed in an order
    # that leaves the C heap's top in use, so glibc would keep the rest.
    burst = [("x" * 3000 + str(n)) for n in range(40_000)]
    keep = burst[-1]
    del burst
    freed = rss_mb()
    release_freed_memory()
    assert rss_mb() < freed - 40
    assert keep.endswith("39999")
