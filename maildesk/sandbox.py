"""Parsing with a time limit: in a child process that is killed when it runs over.

The stdlib parser is pure Python and some real messages (deep MIME nesting, huge
header lines) take it seconds or minutes. A thread cannot be stopped safely, and
SIGALRM only reaches the main thread, while the daemon may parse on others. So by
default each parse runs in a long-lived child process: the parent waits at most
`timeout` seconds for the answer, then kills the child and starts a new one on the
next call. Children are shared by every pipeline in the process. A parser crash
(even in C code) kills only the child, and the message is quarantined.

`InlineParser` parses in-process (no fork, no pickling); it enforces the limit with
SIGALRM when called on the main thread and cannot enforce it anywhere else.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from maildesk.errors import ParseError, ProcessingTimeout
from maildesk.parse import ParsedMessage, ParseLimits, Spilled, parse_message

log = logging.getLogger(__name__)


class MessageParser(Protocol):
    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage: ...


def timeout_message(timeout: float) -> str:
    return f"processing took longer than {timeout:g} s"


class InlineParser:
    """Parses in this process; the time limit holds only on the main thread (SIGALRM)."""

    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage:
        with _alarm(timeout):
            return parse_message(raw, limits=limits, spilled=spilled)


@contextmanager
def _alarm(timeout: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    except _Expired:
        raise ProcessingTimeout(timeout_message(timeout)) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Expired(BaseException):
    """Raised by the alarm; a BaseException so the parser's `except Exception` can't eat it."""


STARTUP_SECONDS = 60


class _Worker:
    """One child: `python -c` running `_child_main`, talking pickles over two pipes.

    Not multiprocessing: its spawn and forkserver modes re-import the parent's main
    script in the child, which breaks any script without a `__main__` guard.
    """

    def __init__(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        code = f"import maildesk.sandbox as s; s._child_main({to_child_r}, {from_child_w})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal is for the parent to handle
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.to_child = Connection(to_child_w, readable=False)
        self.from_child = Connection(from_child_r, writable=False)
        # Wait for the child's imports, so they never count against a message's time.
        try:
            ready = self.from_child.poll(STARTUP_SECONDS) and self.from_child.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise ParseError("the parser process did not start")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)
        self._close()

    def stop(self) -> None:
        self._close()  # the child reads EOF and exits
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            self.kill()

    def _close(self) -> None:
        self.to_child.close()
        self.from_child.close()


class SandboxedParser:
    """Parses in child processes; a child that runs over the time limit is killed."""

    def __init__(self, max_idle: int = 4):
        self.max_idle = max_idle
        self.idle: list[_Worker] = []
        self.lock = threading.Lock()
        self.started = 0  # children started so far (each timeout costs one)

    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage:
        worker = self._acquire()
        try:
            try:
                worker.to_child.send((raw, limits, spilled))
            except OSError:  # an idle child died meanwhile: one more try with a new one
                worker.kill()
                worker = self._acquire()
                worker.to_child.send((raw, limits, spilled))
            if not worker.from_child.poll(timeout):
                worker.kill()
                raise ProcessingTimeout(timeout_message(timeout))
            status, value = worker.from_child.recv()
        except (EOFError, OSError) as exc:
            worker.kill()
            code = worker.process.returncode
            raise ParseError(f"the parser process died (exit code {code}): {exc}") from None
        self._release(worker)
        if status == "ok":
            return value
        raise ParseError(value)

    def _acquire(self) -> _Worker:
        with self.lock:
            while self.idle:
                worker = self.idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
            self.started += 1
        return _Worker()

    def _release(self, worker: _Worker) -> None:
        with self.lock:
            if len(self.idle) < self.max_idle:
                self.idle.append(worker)
                return
        worker.stop()

    def close(self) -> None:
        """Stop the idle children (busy ones stop when their caller is done)."""
        with self.lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.stop()


def _child_main(read_fd: int, write_fd: int) -> None:
    """The child: parse what the parent sends until the pipe closes."""
    logging.disable(logging.CRITICAL)  # library warnings would echo raw header text
    requests = Connection(read_fd, writable=False)
    conn = Connection(write_fd, readable=False)
    conn.send("ready")
    while True:
        try:
            raw, limits, spilled = requests.recv()
        except (EOFError, OSError):
            return
        try:
            result: tuple[str, Any] = ("ok", parse_message(raw, limits=limits, spilled=spilled))
        except ParseError as exc:
            result = ("error", str(exc))
        except MemoryError:
            result = ("error", "the message needs too much memory to parse")
        except Exception as exc:
            result = ("error", f"parser failed: {type(exc).__name__}: {exc}")
        try:
            conn.send(result)
        except (EOFError, OSError):
            return


_shared: SandboxedParser | None = None
_shared_lock = threading.Lock()


def shared_sandbox() -> SandboxedParser:
    """The process-wide sandboxed parser (children are started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SandboxedParser()
            atexit.register(_shared.close)
        return _shared
