"""Copying SQLite's write-ahead log into the database file, mostly on a thread of its own.

Left to itself SQLite does this inside the commit that takes the log past
`wal_autocheckpoint` pages, so an ingest commit every batch or so also copies megabytes
into the database file and waits for them to reach the disk. Here a background thread
does that after each commit (the sqlite3 module lets other threads run meanwhile). The
log only starts over when a checkpoint ends between two write transactions, which under
steady ingest the background thread rarely sees; so writers keep a threshold of their
own (WRITER_CHECKPOINT_PAGES) and, when they reach it, find nearly everything copied
already and only start the log over.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

log = logging.getLogger(__name__)

# Writing connections checkpoint by themselves past this many pages of log (4 KiB each).
WRITER_CHECKPOINT_PAGES = 4000


class WalCheckpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` when nudged after a commit, or every `interval`."""

    def __init__(self, engine: Engine, interval: float = 1.0):
        self.engine = engine
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="maildesk-checkpoint", daemon=True
            )
            self._thread.start()

    def nudge(self) -> None:
        """Something was committed: copy it over soon."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        connection = self.engine.raw_connection()
        try:
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                try:
                    connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except Exception as exc:  # e.g. a full disk: commits still work; try again
                    log.warning(
                        "copying the write-ahead log into %s failed (tried again in %g s): %s",
                        self.engine.url.database,
                        self.interval,
                        exc,
                    )
        finally:
            connection.close()
