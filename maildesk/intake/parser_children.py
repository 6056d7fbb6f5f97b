"""Parsing with time and memory limits: in child processes that are replaced when they fail.

The stdlib parser is pure Python and some real messages (deep MIME nesting, huge
header lines, thousands of tiny parts) take it minutes or gigabytes. A thread cannot
be stopped safely, and SIGALRM only reaches the main thread, while the daemon may
parse on others. So by default every reading of received bytes runs in long-lived
child processes (`maildesk.common.children`): whole small messages, and for large ones
the skeleton cut, its parse and the unpacking of winmail.dat (the child writes the
blobs it cuts out into a job folder; the daemon adopts them). A child stops a slow job
itself and goes on with the next; a child that goes quiet is killed; a job that needs
more than `limits.parser_memory_bytes` fails with MemoryError and its child is
replaced; a parser crash (even in C code) kills only the child. Only the message it
was on is quarantined.

`InlineParser` parses in-process (no fork, no pickling); it enforces the time limit
with SIGALRM when called on the main thread and cannot enforce it anywhere else, nor
any memory limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from maildesk.common.child_jobs import Result, alarm
from maildesk.common.children import ChildPool, ChildUnavailable, shared
from maildesk.common.errors import ParseError, ProcessingTimeout, SkeletonTooLarge
from maildesk.intake.blob_writer import BlobWriter
from maildesk.intake.folder_blobs import FolderBlobs, adopt_all, job_folder
from maildesk.intake.message import ParsedMessage, ParseLimits, Spilled
from maildesk.intake.raw_mail import IncomingMail


class MessageParser(Protocol):
    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage: ...

    def read_large(
        self, mail: IncomingMail, blobs: BlobWriter, limits: ParseLimits, timeout: float
    ) -> ParsedMessage: ...


class InlineParser:
    """Parses in this process; the time limit holds only on the main thread (SIGALRM)."""

    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage:
        from maildesk.intake.parse import parse_message

        with alarm(timeout):
            return parse_message(raw, limits=limits, spilled=spilled)

    def read_large(
        self, mail: IncomingMail, blobs: BlobWriter, limits: ParseLimits, timeout: float
    ) -> ParsedMessage:
        """See large_mail.read_large; raises SkeletonTooLarge."""
        from maildesk.intake.large_mail import read_large

        with alarm(timeout), mail.open() as fh:
            return read_large(fh, blobs, limits)


@dataclass(frozen=True)
class _LargeJob:
    """A large message for a child: the file to read, the folder to write blobs into."""

    path: str
    folder: str
    limits: ParseLimits


@dataclass(frozen=True)
class _LargeResult:
    msg: ParsedMessage | None  # None: too big to read (`too_large` says why)
    too_large: str
    written: list[str]  # the blobs in the job folder, by SHA-256


_Job = tuple[bytes, ParseLimits, Spilled | None] | _LargeJob
_Outcome = ParsedMessage | _LargeResult | ParseError | ProcessingTimeout


class SandboxedParser(ChildPool):
    """Parses in child processes; a child that runs over the time limit is killed."""

    def __init__(self, max_idle: int = 4):
        super().__init__("maildesk.intake.parser_children:_parse_job", "parser", max_idle)

    def parse(
        self, raw: bytes, limits: ParseLimits, spilled: Spilled | None, timeout: float
    ) -> ParsedMessage:
        result = self._parse_jobs([(raw, limits, spilled)], limits, timeout)[0]
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, ParsedMessage)
        return result

    def parse_many(
        self, raws: Sequence[bytes], limits: ParseLimits, timeout: float
    ) -> list[ParsedMessage | ParseError | ProcessingTimeout]:
        """Parse several messages in one round trip to a child; each keeps its own time
        limit, and a message that times out or kills the child fails alone."""
        results = self._parse_jobs([(raw, limits, None) for raw in raws], limits, timeout)
        return cast(list[ParsedMessage | ParseError | ProcessingTimeout], results)

    def read_large(
        self, mail: IncomingMail, blobs: BlobWriter, limits: ParseLimits, timeout: float
    ) -> ParsedMessage:
        """See large_mail.read_large, in a child; raises SkeletonTooLarge."""
        with job_folder(blobs) as folder:
            path = mail.path
            if path is None:  # held in memory: handed over as a file, not through the pipe
                path = folder / "message"
                with path.open("wb") as fh:
                    fh.write(mail.bytes())
            job = _LargeJob(str(path), str(folder), limits)
            (result,) = self._parse_jobs([job], limits, timeout)
            if isinstance(result, Exception):
                raise result
            assert isinstance(result, _LargeResult)
            if result.msg is None:
                raise SkeletonTooLarge(result.too_large)
            adopt_all(blobs, folder, result.written)
            return result.msg

    def _parse_jobs(self, jobs: list[_Job], limits: ParseLimits, timeout: float) -> list[_Outcome]:
        try:
            results = self.run(jobs, timeout, limits.memory_bytes)
        except ChildUnavailable as exc:
            raise ParseError(str(exc)) from None
        return [_outcome(result) for result in results]


def _outcome(result: Result) -> _Outcome:
    status, value = result
    if status == "ok":
        return value
    if status == "timeout":
        return ProcessingTimeout(value)
    if status == "memory":
        return ParseError(f"the message {value} to parse")
    return ParseError(value)


_WARM_UP = (
    b"From: Warm Up <warm@example.org>\r\nTo: desk@example.org\r\nSubject: =?utf-8?q?warm?=\r\n"
    b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <warm@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nwarm up\r\n"
)


def prepare_child() -> None:
    """Runs in a new child before it says it is ready (maildesk.common.child_jobs calls
    it): the parser's imports, which the daemon itself does without, and one small
    parse for what is set up on first use, so neither counts against a job's time."""
    import maildesk.intake.large_mail
    import maildesk.intake.search_document  # noqa: F401
    from maildesk.intake.parse import parse_message

    parse_message(_WARM_UP, limits=ParseLimits())


def _parse_job(job: _Job) -> ParsedMessage | _LargeResult:
    """Runs in the child: one message, every failure but MemoryError a ParseError."""
    from maildesk.intake.parse import parse_message
    from maildesk.intake.search_document import add_search_vector

    try:
        if isinstance(job, _LargeJob):
            large = _read_large(job)
            if large.msg is not None and job.limits.search_vectors:
                add_search_vector(large.msg)
            return large
        raw, limits, spilled = job
        msg = parse_message(raw, limits=limits, spilled=spilled)
        if limits.search_vectors:
            add_search_vector(msg)
        return msg
    except (ParseError, MemoryError):
        raise  # MemoryError: child_jobs.run_one reports the limit
    except Exception as exc:
        raise ParseError(f"parser failed: {type(exc).__name__}: {exc}") from None


def _read_large(job: _LargeJob) -> _LargeResult:
    from maildesk.intake.large_mail import read_large

    blobs = FolderBlobs(Path(job.folder))
    try:
        with open(job.path, "rb") as fh:
            msg = read_large(fh, blobs, job.limits)
    except SkeletonTooLarge as exc:
        return _LargeResult(None, str(exc), [])
    return _LargeResult(msg, "", blobs.written)


def shared_sandbox() -> SandboxedParser:
    """The process-wide sandboxed parser (children are started on first use)."""
    return shared("parser", SandboxedParser)
