"""What runs inside a parser or render child: its job loop, each job's time limit
(SIGALRM) and the chunk's memory limit (RLIMIT_AS). `maildesk.common.children` starts
the children and hands them the jobs.

`alarm` and `run_one` also serve in-process fallbacks (InlineParser, InlineRenderer).
"""

from __future__ import annotations

import importlib
import logging
import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from maildesk.common.errors import MaildeskError, ProcessingTimeout

Result = tuple[str, Any]


def timeout_message(timeout: float) -> str:
    return f"processing took longer than {timeout:g} s"


def memory_message(limit: int) -> str:
    """What ran out, for "the message ... to parse" and the like."""
    return f"needs more than {limit >> 20} MiB" if limit else "needs more memory than there is"


@contextmanager
def alarm(timeout: float) -> Iterator[None]:
    """Raise ProcessingTimeout in the block after `timeout` seconds (main thread only).

    The SIGALRM handler is installed once and stays, doing nothing outside a block:
    installing and restoring it around every job was 5% of a parser child's time.
    """
    global _alarm_armed
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return
    if signal.getsignal(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    _alarm_armed = True
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    except _Expired:
        raise ProcessingTimeout(timeout_message(timeout)) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _alarm_armed = False


_alarm_armed = False


def _on_alarm(signum: int, frame: Any) -> None:
    if _alarm_armed:
        raise _Expired


class _Expired(BaseException):
    """Raised by the alarm; a BaseException so a job's `except Exception` can't eat it."""


def child_main(handler: str, read_fd: int, write_fd: int, progress_fd: int) -> None:
    """The child: run the jobs the parent sends until the pipe closes."""
    logging.disable(logging.CRITICAL)  # library warnings would echo raw message text
    module_name, _, function = handler.partition(":")
    module = importlib.import_module(module_name)
    run_job: Callable[[Any], Any] = getattr(module, function)
    prepare = getattr(module, "prepare_child", None)
    if prepare is not None:  # before "ready": start-up work is not charged to the first jobs
        prepare()
    requests = Connection(read_fd, writable=False)
    conn = Connection(write_fd, readable=False)
    conn.send("ready")
    while True:
        try:
            jobs, timeout, memory_bytes = requests.recv()
        except (EOFError, OSError):
            return
        limit_memory(memory_bytes)
        results = []
        for job in jobs:
            results.append(run_one(run_job, job, timeout, memory_bytes))
            os.write(progress_fd, b".")
        try:
            conn.send(results)
        except (EOFError, OSError):
            return


def limit_memory(limit: int) -> None:
    """Cap this process's address space at `limit` bytes (0: as much as the hard limit
    allows). The soft limit only: the next chunk may ask for a different one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = limit or hard
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted != soft:
        resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


def run_one(
    run_job: Callable[[Any], Any], job: Any, timeout: float, memory_bytes: int = 0
) -> Result:
    """One job's result, its errors as messages; the time limit holds on the main thread."""
    try:
        with alarm(timeout):
            return ("ok", run_job(job))
    except ProcessingTimeout as exc:
        return ("timeout", str(exc))
    except MemoryError:
        return ("memory", memory_message(memory_bytes))
    except MaildeskError as exc:
        return ("error", str(exc))
    except Exception as exc:
        return ("error", f"{type(exc).__name__}: {exc}")
