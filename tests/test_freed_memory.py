"""After a burst, memory the daemon freed goes back to the system (glibc)."""

from __future__ import annotations

import os
import subprocess
import sys
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


_COUNT_HEAPS = """
import ctypes, os, sys, tempfile, threading
from maildesk.common.freed_memory import share_thread_heaps
if sys.argv[1] == "shared":
    share_thread_heaps(2)
held = []
together = threading.Barrier(8)  # alive at once: a thread that ended hands its heap on
def allocate():
    held.append([bytes(4096) for _ in range(200)])  # malloc'd by this thread
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
out = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(out))
libc.fclose(ctypes.c_void_p(out))
print(open(path).read().count("<heap nr="))
os.unlink(path)
"""


def _heaps(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_HEAPS, mode], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(_glibc() is None, reason="glibc")
def test_the_daemons_threads_share_two_heaps():
    """Eight threads that allocate get heaps of their own unless the daemon asked glibc
    to share two (what each thread freed would stay in its own heap)."""
    assert _heaps("own") > 2
    assert _heaps("shared") == 2
