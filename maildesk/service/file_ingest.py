"""Ingesting message files: .eml files named on the command line, or a Maildir's.

Files are ingested in batches, each in one transaction, the next batch read while
the one before it is written. `committed(path)` runs once a file's batch is
committed: a Maildir marks it seen then, so a crash in between leaves it unseen and
the next run recognises it by Message-ID (or hash) as a duplicate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from maildesk.intake.raw_mail import IncomingMail, discard_all
from maildesk.service.ingest_results import IngestResult, SourceInfo
from maildesk.service.pipeline import BatchHook, Pipeline, StartedBatch

log = logging.getLogger(__name__)

BATCH_SIZE = 200


@dataclass
class _Batch:
    paths: list[Path]
    mails: list[IncomingMail]
    started: StartedBatch

    def discard(self) -> None:
        discard_all(self.mails)


def ingest_paths(
    pipeline: Pipeline,
    paths: Sequence[Path],
    source: Callable[[Path], SourceInfo],
    *,
    batch_size: int = BATCH_SIZE,
    committed: Callable[[Path], None] | None = None,
    in_transaction: BatchHook | None = None,
    lock: threading.Lock | None = None,
) -> Iterator[tuple[Path, IngestResult]]:
    """Ingest message files batch by batch; yield each file's result after its commit.

    `committed(path)` runs for every file of a batch once it is committed (stored or
    quarantined: either way it is kept). `in_transaction` runs inside each batch's
    transaction (see Pipeline.process_batch); `lock` is held while a batch is written.
    Raises TemporaryFailure when a batch cannot be committed; the batches before it
    stay committed. Big files are spooled, never read into memory whole.
    """
    finish = _Finisher(pipeline, committed, in_transaction, lock or threading.Lock())
    pending: _Batch | None = None
    try:
        for start in range(0, len(paths), batch_size):
            chunk, mails = _read(pipeline, paths[start : start + batch_size])
            if not chunk:
                continue
            items = [(mail, source(path)) for path, mail in zip(chunk, mails, strict=True)]
            started = pipeline.start_batch(items)
            previous, pending = pending, _Batch(chunk, mails, started)
            if previous is not None:
                yield from finish(previous)
        if pending is not None:
            last, pending = pending, None
            yield from finish(last)
    finally:
        if pending is not None:  # read but not committed
            pending.discard()


def _read(pipeline: Pipeline, paths: Sequence[Path]) -> tuple[list[Path], list[IncomingMail]]:
    """The files that are still there and readable, and their messages (spooled when big).

    A file that cannot be opened (its mode or owner) stays where it is, for the next pass
    once fixed, and does not hold up the files after it."""
    found: list[Path] = []
    mails: list[IncomingMail] = []
    try:
        for path in paths:
            try:
                stream = path.open("rb")
            except FileNotFoundError:  # another reader of the Maildir took it: not ours
                log.info("%s: gone before it was read; skipped", path)
                continue
            except OSError as exc:  # its mode or owner; an error while reading or spooling
                _report_unreadable(path, exc)  # it below (a full disk) fails the source
                continue
            with stream:
                mails.append(pipeline.reader.receive(stream))
            found.append(path)
    except BaseException:
        discard_all(mails)
        raise
    return found, mails


_reported: set[tuple[Path, str]] = set()  # logged once per process, not at every poll


def _report_unreadable(path: Path, exc: OSError) -> None:
    why = exc.strerror or type(exc).__name__
    if (path, why) not in _reported:
        _reported.add((path, why))
        log.error("%s cannot be read (%s): left in place, the other files go on", path, why)


@dataclass
class _Finisher:
    pipeline: Pipeline
    committed: Callable[[Path], None] | None
    in_transaction: BatchHook | None
    lock: threading.Lock

    def __call__(self, batch: _Batch) -> Iterator[tuple[Path, IngestResult]]:
        try:
            with self.lock:
                results = self.pipeline.finish_batch(
                    batch.started, in_transaction=self.in_transaction
                )
        finally:
            batch.discard()
        if self.committed is not None:
            for path in batch.paths:
                self.committed(path)
        yield from zip(batch.paths, results, strict=True)
