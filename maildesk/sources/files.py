"""Message files as a mail source: .eml files named on the command line, or a Maildir.

Files are ingested in batches, each in one transaction, the next batch read while
the one before it is written. A Maildir (what Postfix, Exim or Dovecot deliver into)
gives the messages waiting in `new/`, and those in `cur/` without the Seen flag;
each is marked seen, moved to `cur/` with the `S` flag as a mail client would, only
after its batch is committed. A crash in between leaves it unseen: the next run
recognises it by Message-ID (or hash), reports it as a duplicate and marks it then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from maildesk.errors import MaildeskError
from maildesk.incoming import IncomingMail, discard_all
from maildesk.pipeline import BatchHook, IngestResult, Pipeline, SourceInfo, StartedBatch

log = logging.getLogger(__name__)

BATCH_SIZE = 200


class MaildirError(MaildeskError):
    """A folder that is not a Maildir."""


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
    """The files that are still there, and their messages (spooled when big)."""
    found: list[Path] = []
    mails: list[IncomingMail] = []
    try:
        for path in paths:
            try:
                stream = path.open("rb")
            except FileNotFoundError:  # another reader of the Maildir took it: not ours
                log.info("%s: gone before it was read; skipped", path)
                continue
            with stream:
                mails.append(pipeline.reader.receive(stream))
            found.append(path)
    except BaseException:
        discard_all(mails)
        raise
    return found, mails


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


class Maildir:
    """A Maildir folder: which messages wait, and marking one seen."""

    def __init__(self, root: Path):
        self.root = root
        missing = [d for d in ("new", "cur") if not (root / d).is_dir()]
        if missing:
            raise MaildirError(
                f"{root} is not a Maildir: it has no {' or '.join(d + '/' for d in missing)} "
                "folder (a Maildir holds cur/, new/ and tmp/)"
            )

    def waiting(self) -> list[Path]:
        """Messages not seen yet, oldest delivery first (only those are stat'ed: a cur/
        with years of seen mail costs a directory listing per poll, nothing more)."""
        found = _files(self.root / "new", lambda name: True)
        found += _files(self.root / "cur", lambda name: "S" not in _flags(name))
        return sorted(found, key=_delivery_order)

    def mark_seen(self, path: Path) -> None:
        """Move a message to cur/ with the Seen flag (gone already: another reader took it)."""
        base, _, _ = path.name.partition(":2,")
        flags = "".join(sorted(set(_flags(path.name)) | {"S"}))
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, self.root / "cur" / f"{base}:2,{flags}")


def _files(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    # Dot files are not messages (some delivery agents keep state there).
    with os.scandir(folder) as entries:
        return [
            Path(e.path)
            for e in entries
            if not e.name.startswith(".") and wanted(e.name) and e.is_file()
        ]


def _flags(name: str) -> str:
    return name.partition(":2,")[2]


def _delivery_order(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except FileNotFoundError:
        return (0.0, path.name)
