"""Parsing with a time limit: in a child process that is killed when it runs over.

The stdlib parser is pure Python and some real messages (deep MIME nesting, huge
header lines) take it seconds or minutes. A thread cannot be stopped safely, and
SIGALRM only reaches the main thread, while the daemon may parse on others. So by
default parsing runs in long-lived child processes. A child is sent a chunk of
messages and answers once for the chunk; it stops a parse that runs over `timeout`
itself (SIGALRM on its own main thread) and goes on with the next message. It reports
progress, one byte per message, on a side pipe: a child that finishes nothing for
`timeout` plus a grace period (stuck in code that ignores signals) is killed, that
message fails, and the rest of the chunk goes to a new child. A parser crash (even in
C code) kills only the child, and only the message it was on is quarantined.

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
from collections.abc import Iterator, Sequence
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
# How long past its own time limit a child may go quiet before it is killed: the child
# stops a slow parse itself (SIGALRM), so only code that ignores signals needs the kill.
KILL_GRACE_SECONDS = 1.0

_Job = tuple[bytes, ParseLimits, Spilled | None]
_Result = ParsedMessage | ParseError | ProcessingTimeout


class _Worker:
    """One child: `python -c` running `_child_main`, talking pickles over pipes.

    Not multiprocessing: its spawn and forkserver modes re-import the parent's main
    script in the child, which breaks any script without a `__main__` guard.
    """

    def __init__(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        progress_r, progress_w = os.pipe()
        _widen(from_child_w)
        os.set_blocking(progress_r, False)
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        fds = (to_child_r, from_child_w, progress_w)
        code = f"import maildesk.sandbox as s; s._child_main{fds}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal is for the parent to handle
        )
        for fd in fds:
            os.close(fd)
        self.to_child = Connection(to_child_w, readable=False)
        self.from_child = Connection(from_child_r, writable=False)
        self.progress = progress_r  # one byte per message parsed
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

    def parsed_since_last_asked(self) -> int:
        """How many messages the child finished since the last call."""
        count = 0
        while True:
            try:
                chunk = os.read(self.progress, 65536)
            except BlockingIOError:
                return count
            if not chunk:
                return count
            count += len(chunk)

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
        os.close(self.progress)


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
        result = self._parse_jobs([(raw, limits, spilled)], timeout)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def parse_many(
        self, raws: Sequence[bytes], limits: ParseLimits, timeout: float
    ) -> list[_Result]:
        """Parse several messages in one round trip to a child (one answer for all of them,
        so the waiting thread needs the GIL once); each keeps its own time limit, and a
        message that times out or kills the child fails alone."""
        return self._parse_jobs([(raw, limits, None) for raw in raws], timeout)

    def _parse_jobs(self, jobs: list[_Job], timeout: float) -> list[_Result]:
        worker = self._acquire()
        try:
            worker.to_child.send((jobs, timeout))
        except OSError:  # an idle child died meanwhile: one more try with a new one
            worker.kill()
            worker = self._acquire()
            worker.to_child.send((jobs, timeout))
        answer = self._answer(worker, timeout)
        if isinstance(answer, list):
            self._release(worker)
            return answer
        done, failure = answer  # the child was lost on jobs[done]; the others go again
        before = self._parse_jobs(jobs[:done], timeout) if done else []
        after = self._parse_jobs(jobs[done + 1 :], timeout) if done + 1 < len(jobs) else []
        return [*before, failure, *after]

    def _answer(self, worker: _Worker, timeout: float) -> list[_Result] | tuple[int, _Result]:
        """The child's results, or (messages it finished, why it was lost) once it is killed
        for going quiet past its time limit, or has died."""
        done = 0
        try:
            while not worker.from_child.poll(timeout + KILL_GRACE_SECONDS):
                progressed = worker.parsed_since_last_asked()
                if not progressed:
                    worker.kill()
                    return done, ProcessingTimeout(timeout_message(timeout))
                done += progressed
            results = worker.from_child.recv()
        except (EOFError, OSError) as exc:
            done += worker.parsed_since_last_asked()
            worker.kill()
            code = worker.process.returncode
            return done, ParseError(f"the parser process died (exit code {code}): {exc}")
        worker.parsed_since_last_asked()  # drained for the next run
        return [_result(status, value) for status, value in results]

    def prestart(self, count: int) -> None:
        """Have at least `count` idle children ready (started side by side)."""
        missing = max(0, min(count, self.max_idle) - len(self.idle))
        threads = [threading.Thread(target=self._start_one) for _ in range(missing)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _start_one(self) -> None:
        with self.lock:
            self.started += 1
        self._release(_Worker())

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


def _result(status: str, value: Any) -> _Result:
    if status == "ok":
        return value
    if status == "timeout":
        return ProcessingTimeout(value)
    return ParseError(value)


def _widen(fd: int) -> None:
    """Let a pipe hold a whole chunk's answer (Linux), so the child never waits on us."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def _child_main(read_fd: int, write_fd: int, progress_fd: int) -> None:
    """The child: parse what the parent sends until the pipe closes."""
    logging.disable(logging.CRITICAL)  # library warnings would echo raw header text
    requests = Connection(read_fd, writable=False)
    conn = Connection(write_fd, readable=False)
    conn.send("ready")
    while True:
        try:
            jobs, timeout = requests.recv()
        except (EOFError, OSError):
            return
        results = []
        for raw, limits, spilled in jobs:
            results.append(_parse_job(raw, limits, spilled, timeout))
            os.write(progress_fd, b".")
        try:
            conn.send(results)
        except (EOFError, OSError):
            return


def _parse_job(
    raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
) -> tuple[str, Any]:
    try:
        with _alarm(timeout):
            return ("ok", parse_message(raw, limits=limits, spilled=spilled))
    except ProcessingTimeout as exc:
        return ("timeout", str(exc))
    except ParseError as exc:
        return ("error", str(exc))
    except MemoryError:
        return ("error", "the message needs too much memory to parse")
    except Exception as exc:
        return ("error", f"parser failed: {type(exc).__name__}: {exc}")


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
