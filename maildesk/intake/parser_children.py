"""Parsing with a time limit: in a child process that is killed when it runs over.

The stdlib parser is pure Python and some real messages (deep MIME nesting, huge
header lines) take it seconds or minutes. A thread cannot be stopped safely, and
SIGALRM only reaches the main thread, while the daemon may parse on others. So by
default parsing runs in long-lived child processes (`maildesk.common.children`): a child
parses a chunk of messages, stops a slow parse itself and goes on with the next; a
child that goes quiet is killed; a parser crash (even in C code) kills only the child,
and only the message it was on is quarantined.

`InlineParser` parses in-process (no fork, no pickling); it enforces the limit with
SIGALRM when called on the main thread and cannot enforce it anywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from maildesk.common.children import ChildPool, ChildUnavailable, Result, alarm, shared
from maildesk.common.errors import ParseError, ProcessingTimeout
from maildesk.intake.message import ParsedMessage, ParseLimits, Spilled
from maildesk.intake.parse import parse_message


class MessageParser(Protocol):
    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage: ...


class InlineParser:
    """Parses in this process; the time limit holds only on the main thread (SIGALRM)."""

    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage:
        with alarm(timeout):
            return parse_message(raw, limits=limits, spilled=spilled)


_Job = tuple[bytes, ParseLimits, Spilled | None]
_Outcome = ParsedMessage | ParseError | ProcessingTimeout


class SandboxedParser(ChildPool):
    """Parses in child processes; a child that runs over the time limit is killed."""

    def __init__(self, max_idle: int = 4):
        super().__init__("maildesk.intake.parser_children:_parse_job", "parser", max_idle)

    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage:
        result = self._parse_jobs([(raw, limits, spilled)], timeout)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def parse_many(
        self, raws: Sequence[bytes], limits: ParseLimits, timeout: float
    ) -> list[_Outcome]:
        """Parse several messages in one round trip to a child; each keeps its own time
        limit, and a message that times out or kills the child fails alone."""
        return self._parse_jobs([(raw, limits, None) for raw in raws], timeout)

    def _parse_jobs(self, jobs: list[_Job], timeout: float) -> list[_Outcome]:
        try:
            results = self.run(jobs, timeout)
        except ChildUnavailable as exc:
            raise ParseError(str(exc)) from None
        return [_outcome(result) for result in results]


def _outcome(result: Result) -> _Outcome:
    status, value = result
    if status == "ok":
        return value
    if status == "timeout":
        return ProcessingTimeout(value)
    return ParseError(value)


def _parse_job(job: _Job) -> ParsedMessage:
    """Runs in the child: one message, every failure a ParseError with a reason."""
    raw, limits, spilled = job
    try:
        return parse_message(raw, limits=limits, spilled=spilled)
    except ParseError:
        raise
    except MemoryError:
        raise ParseError("the message needs too much memory to parse") from None
    except Exception as exc:
        raise ParseError(f"parser failed: {type(exc).__name__}: {exc}") from None


def shared_sandbox() -> SandboxedParser:
    """The process-wide sandboxed parser (children are started on first use)."""
    return shared("parser", SandboxedParser)
