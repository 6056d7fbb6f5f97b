"""The daemon's drain of the spool that `maildesk ingest -` writes (see `intake.spool`).

Like a Maildir (`maildir_ingest`), with the mailbox worker's lease, back-off and
`maildesk status` line: the messages in new/ are ingested oldest first, in batches,
and each file is moved to cur/ only after its batch commits (a crash in between
leaves it to be taken again and recognised by Message-ID, or hash, as a duplicate).
cur/ is emptied while the drain waits for mail: an unlink of a freshly written file
costs 1-3 ms on a busy disk, a rename a tenth of that, so deleting waits until no mail
does. The drain wakes within 0.1 s of a delivery (new/ changes), and polls every
second anyway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maildesk.common.config import SpoolConfig
from maildesk.intake.spool import STALE_TMP_SECONDS, make_folders, queue_of
from maildesk.service.file_ingest import ingest_paths
from maildesk.service.ingest_results import SourceInfo
from maildesk.service.source_ingest import SourceIngest

if TYPE_CHECKING:
    from maildesk.service.desk import Desk

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.1  # how often wait() looks at new/ for a delivery
CLEAN_TMP_SECONDS = 3600.0
# An empty spool is recorded as idle (a transaction) this often, not at every poll.
IDLE_RECORD_SECONDS = 30.0
DELETE_CHUNK = 50  # files deleted from cur/ between two looks at new/
CLOSE_DELETE_LIMIT = 2000  # at close: a few seconds at most; the rest goes next time


class SpoolIngest(SourceIngest):
    """Drains the spool `config.path`, for as long as the worker holds its lease."""

    config: SpoolConfig

    def __init__(self, desk: Desk, config: SpoolConfig, **options: Any):
        super().__init__(desk, config, **options)
        self.new = config.path / "new"
        self.taken = config.path / "cur"
        self._seen: int | None = None  # new/'s mtime when it was last listed
        self._cleaned = 0.0
        self._idle_since: float | None = None  # when an empty spool was last recorded

    def open(self) -> None:
        """Create the spool's folders if the MTA has not yet; a spool that cannot be made
        here holds nothing to drain (the pipe could not write it either), so only warn."""
        try:
            make_folders(self.config.path)
        except OSError as exc:
            log.warning(
                "spool %s: cannot create it (%s); `maildesk ingest -` exits 75 until it "
                "exists: set spool: in maildesk.yaml to a folder the MTA's user may write",
                self.config.path,
                exc.strerror or exc,
            )
        self.lease.record("connected")

    def sync(self, interrupt: threading.Event | None = None) -> int:
        """Ingest the spooled messages, batch by batch; the number committed."""
        self._seen = _mtime(self.new)
        if self._seen is None:  # no spool (yet): nothing was piped
            return self._idle()
        self._clean_tmp()
        waiting = waiting_messages(self.config.path)
        if not waiting:
            return self._idle()
        self._idle_since = None
        log.info("spool %s: %d message(s) to ingest", self.config.path, len(waiting))
        done = 0
        for _path, _result in ingest_paths(
            self.desk.pipeline,
            waiting,
            self._source,
            batch_size=self.config.batch_size,
            committed=self._taken,
            in_transaction=self.lease.renew,
            lock=self.lock,
        ):
            done += 1
            if done % self.config.batch_size == 0 and interrupt is not None and interrupt.is_set():
                break  # between batches: the rest stays spooled
        self.lease.record("idle", success=True, backlog=len(waiting) - done)
        return done

    def wait(self, seconds: float, interrupt: threading.Event) -> None:
        """Empty cur/ and sleep until a delivery changes new/, `seconds` pass, or `interrupt`."""
        deadline = time.monotonic() + seconds
        while not interrupt.is_set():
            if _mtime(self.new) != self._seen or time.monotonic() >= deadline:
                return
            if not _delete_files(self.taken, limit=DELETE_CHUNK):
                interrupt.wait(WATCH_SECONDS)

    def close(self) -> None:
        """Empty cur/ (what `ingest --spool` took; the daemon's wait() does it as it goes)."""
        _delete_files(self.taken, limit=CLOSE_DELETE_LIMIT)
        self._seen = None

    def _idle(self) -> int:
        """Record an empty spool, at most every IDLE_RECORD_SECONDS (each is a transaction)."""
        now = time.monotonic()
        if self._idle_since is None or now - self._idle_since > IDLE_RECORD_SECONDS:
            self.lease.record("idle", success=True, backlog=0)
            self._idle_since = now
        return 0

    def _taken(self, path: Path) -> None:
        # Committed: out of new/ so no drain takes it again (gone: another drain took it).
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, self.taken / path.name)

    def _source(self, path: Path) -> SourceInfo:
        return SourceInfo(source=self.name, queue=queue_of(path.name) or self.config.queue)

    def _clean_tmp(self) -> None:
        """Delete tmp/ files a failed writer left (it exited non-zero: the MTA kept the mail)."""
        if time.monotonic() - self._cleaned < CLEAN_TMP_SECONDS and self._cleaned:
            return
        self._cleaned = time.monotonic()
        removed = _delete_files(self.config.path / "tmp", time.time() - STALE_TMP_SECONDS)
        if removed:
            log.info("spool %s: removed %d file(s) failed writers left", self.config.path, removed)


def waiting_messages(folder: Path) -> list[Path]:
    """The spooled messages, oldest first (names start with the time they were written)."""
    try:
        with os.scandir(folder / "new") as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / "new" / name for name in sorted(names)]


def spool_backlog(folder: Path) -> tuple[int, datetime | None]:
    """How many messages wait in the spool, and when the oldest was written."""
    waiting = waiting_messages(folder)
    for path in waiting:
        with contextlib.suppress(FileNotFoundError):  # drained meanwhile: try the next
            return len(waiting), datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return 0, None


def _delete_files(folder: Path, older_than: float | None = None, limit: int | None = None) -> int:
    """Delete the files in `folder` (modified before `older_than`, at most `limit`);
    how many."""
    removed = 0
    missing = (FileNotFoundError, NotADirectoryError)  # no spool: nothing to delete
    with contextlib.suppress(*missing), os.scandir(folder) as entries:
        for entry in entries:
            if limit is not None and removed >= limit:
                break
            with contextlib.suppress(FileNotFoundError):
                if older_than is None or entry.stat().st_mtime < older_than:
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _mtime(folder: Path) -> int | None:
    """new/'s modification time (a delivery changes it); None when there is no new/."""
    try:
        return folder.stat().st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return None
