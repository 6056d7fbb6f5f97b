"""Long-lived child processes that run one function over chunks of jobs, with a time limit.

Used where pure-Python work must either be stoppable (parsing hostile mail) or must
not hold the daemon's GIL (rendering notifications while the sender's event loop
talks SMTP). A child is sent a chunk of jobs and answers once for the chunk; it stops
a job that runs over `timeout` itself (SIGALRM on its own main thread) and goes on
with the next. It reports progress, one byte per job, on a side pipe: a child that
finishes nothing for `timeout` plus a grace period (stuck in code that ignores
signals) is killed, that job fails, and the rest of the chunk goes to a new child. A
crash (even in C code) kills only the child, and only the job it was on fails.

A child left idle for `ChildPool.idle_seconds` exits (as Postfix's daemons do after
`max_idle`): an idle desk then holds only its own process, and the next job starts a
child again (about 0.2 s).

A chunk may also carry a memory limit: the child sets it as its address-space limit
(RLIMIT_AS) before the chunk, so a job that would allocate more fails with MemoryError
instead of taking the machine's memory; a child that hit its limit is replaced.

Each job's result is ("ok", value), ("timeout", message), ("memory", message) or
("error", message).
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar, cast

from maildesk.common.child_jobs import Result, timeout_message
from maildesk.common.errors import MaildeskError

log = logging.getLogger(__name__)

STARTUP_SECONDS = 60
# How long past its own time limit a child may go quiet before it is killed: the child
# stops a slow job itself (SIGALRM), so only code that ignores signals needs the kill.
KILL_GRACE_SECONDS = 1.0


class ChildUnavailable(MaildeskError):
    """A child process could not be started."""


class Child:
    """One child: `python -c` running `child_jobs.child_main`, talking pickles over pipes.

    Not multiprocessing: its spawn and forkserver modes re-import the parent's main
    script in the child, which breaks any script without a `__main__` guard, and fork
    is unsafe in a process that runs threads.
    """

    def __init__(self, handler: str, name: str):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        progress_r, progress_w = os.pipe()
        _widen(from_child_w)
        os.set_blocking(progress_r, False)
        fds = (to_child_r, from_child_w, progress_w)
        code = f"import maildesk.common.child_jobs as c; c.child_main({handler!r}, *{fds})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            env=child_environment(os.environ),
            start_new_session=True,  # Ctrl-C in a terminal is for the parent to handle
        )
        for fd in fds:
            os.close(fd)
        self.to_child = Connection(to_child_w, readable=False)
        self.from_child = Connection(from_child_r, writable=False)
        self.progress = progress_r  # one byte per job done
        self.idle_since = 0.0  # time.monotonic() when last put back in its pool
        # Wait for the child's imports, so they never count against a job's time.
        try:
            ready = self.from_child.poll(STARTUP_SECONDS) and self.from_child.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise ChildUnavailable(f"the {name} process did not start")

    def alive(self) -> bool:
        return self.process.poll() is None

    def done_since_last_asked(self) -> int:
        """How many jobs the child finished since the last call."""
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


# What a child may see of the parent's environment: enough to find Python and maildesk
# and to keep locale and time zone; nothing else, so no MAILDESK_*_PASSWORD a daemon
# was started with reaches code that handles hostile mail.
CHILD_ENVIRONMENT = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONHOME", "VIRTUAL_ENV")


def child_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child: CHILD_ENVIRONMENT and LC_* from `parent`, and a
    PYTHONPATH that finds this maildesk first (the children run `python -c`)."""
    env = {k: v for k, v in parent.items() if k in CHILD_ENVIRONMENT or k.startswith("LC_")}
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding maildesk/
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, parent.get("PYTHONPATH")]))
    return env


class ChildPool:
    """Runs `handler` ("module:function", called once per job) in idle children kept for reuse."""

    # A child idle this long exits; 0 keeps idle children. A minute by default
    # (limits.child_idle_seconds; set for the whole process by `retire_idle_after`): a
    # burst's batches follow each other within milliseconds, and mail a minute apart
    # pays 0.2 s of start-up, while a quiet desk does not keep ~30 MB per child.
    idle_seconds: float = 60.0

    def __init__(self, handler: str, name: str, max_idle: int = 4):
        self.handler = handler
        self.name = name  # "parser", "renderer": how errors name the process
        self.max_idle = max_idle
        self.idle: list[Child] = []
        self.lock = threading.Lock()
        self.started = 0  # children started so far (each timeout costs one)
        self.retired = 0  # children that exited after idle_seconds without a job
        self._retirer: threading.Thread | None = None  # runs while children are idle
        self._wake = threading.Event()  # the retirer looks again (closed, limit changed)

    def run(self, jobs: Sequence[Any], timeout: float, memory_bytes: int = 0) -> list[Result]:
        """Run the jobs in one round trip to a child (one answer for all of them, so the
        waiting thread needs the GIL once); each job keeps its own time limit and, unless
        `memory_bytes` is 0, the child may hold at most that much memory. A job that runs
        out of either or kills the child fails alone. Raises ChildUnavailable."""
        jobs = list(jobs)
        request = (jobs, timeout, memory_bytes)
        child = self._acquire()
        try:
            child.to_child.send(request)
        except OSError:  # an idle child died meanwhile: one more try with a new one
            child.kill()
            child = self._acquire()
            child.to_child.send(request)
        answer = self._answer(child, timeout)
        if isinstance(answer, list):
            if any(status == "memory" for status, _ in answer):
                child.stop()  # its heap may stay swollen or fragmented: a fresh one next time
            else:
                self._release(child)
            return answer
        done, failure = answer  # the child was lost on jobs[done]; the others go again
        if done >= len(jobs):  # lost while answering (an answer too big to send, say):
            if len(jobs) == 1:  # which job's answer is unknown, so each goes alone, once
                return [failure]
            return [r for job in jobs for r in self.run([job], timeout, memory_bytes)]
        before = self.run(jobs[:done], timeout, memory_bytes) if done else []
        rest = jobs[done + 1 :]
        after = self.run(rest, timeout, memory_bytes) if rest else []
        return [*before, failure, *after]

    def _answer(self, child: Child, timeout: float) -> list[Result] | tuple[int, Result]:
        """The child's results, or (jobs it finished, why it was lost) once it is killed
        for going quiet past its time limit, or has died."""
        done = 0
        try:
            while not child.from_child.poll(timeout + KILL_GRACE_SECONDS):
                progressed = child.done_since_last_asked()
                if not progressed:
                    child.kill()
                    return done, ("timeout", timeout_message(timeout))
                done += progressed
            results: list[Result] = child.from_child.recv()
        except (EOFError, OSError) as exc:
            done += child.done_since_last_asked()
            child.kill()
            code = child.process.returncode
            return done, ("error", f"the {self.name} process died (exit code {code}): {exc}")
        child.done_since_last_asked()  # drained for the next run
        return results

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
        self._release(Child(self.handler, self.name))

    def _acquire(self) -> Child:
        with self.lock:
            while self.idle:
                child = self.idle.pop()
                if child.alive():
                    return child
                child.kill()
            self.started += 1
        return Child(self.handler, self.name)

    def _release(self, child: Child) -> None:
        child.idle_since = time.monotonic()
        with self.lock:
            if len(self.idle) < self.max_idle:
                self.idle.append(child)
                if self.idle_seconds and self._retirer is None:
                    self._retirer = threading.Thread(
                        target=self._retire_idle, name=f"maildesk-{self.name}-idle", daemon=True
                    )
                    self._retirer.start()
                return
        child.stop()

    def _retire_idle(self) -> None:
        """Stop each child idle for idle_seconds; ends when no child is idle or children
        are to stay (0): the next _release starts it again."""
        while True:
            with self.lock:
                limit, now = self.idle_seconds, time.monotonic()
                due = [c for c in self.idle if limit and now - c.idle_since >= limit]
                self.idle = [c for c in self.idle if c not in due]
                self.retired += len(due)
                oldest = min((c.idle_since for c in self.idle), default=None) if limit else None
                if oldest is None:
                    self._retirer = None
            for child in due:
                child.stop()
            if oldest is None:
                return
            self._wake.wait(max(0.01, oldest + limit - time.monotonic()))
            self._wake.clear()

    def close(self) -> None:
        """Stop the idle children (busy ones stop when their caller is done)."""
        with self.lock:
            idle, self.idle = self.idle, []
        self._wake.set()
        for child in idle:
            child.stop()


_P = TypeVar("_P", bound=ChildPool)
_shared: dict[str, ChildPool] = {}
_shared_lock = threading.Lock()


def shared(key: str, make: Callable[[], _P]) -> _P:
    """One pool per `key` for the whole process: made on first use, closed at exit."""
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None:
            pool = _shared[key] = make()
            atexit.register(pool.close)
        return cast(_P, pool)


def retire_idle_after(seconds: float) -> None:
    """How long an idle child lives, for every pool of this process (0: for ever)."""
    ChildPool.idle_seconds = seconds
    with _shared_lock:
        for pool in _shared.values():
            pool._wake.set()  # a retirer asleep on the old limit looks again


def _widen(fd: int) -> None:
    """Let a pipe hold a whole chunk's answer (Linux), so the child never waits on us."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass
