"""SQLite's write-ahead log is copied into the database file by a background thread."""

from __future__ import annotations

import time
from pathlib import Path

from maildesk.service.ingest_results import SourceInfo
from tests.conftest import make_mail


def _files(desk) -> tuple[Path, Path]:
    database = Path(desk.engine.url.database)
    return database, database.with_name(database.name + "-wal")


def test_committed_batches_reach_the_database_file_without_the_ingest_doing_it(make_desk):
    desk = make_desk()
    database, wal = _files(desk)
    before = database.stat().st_size
    text = "A long description of the problem. " * 300  # about 10 KB a message
    batches = [
        [(make_mail(subject=f"Request {b}-{i}", body=text), SourceInfo("test")) for i in range(20)]
        for b in range(5)
    ]
    for results in desk.pipeline.process_batches(iter(batches)):
        assert {r.outcome for r in results} == {"created"}
    deadline = time.monotonic() + 10
    while database.stat().st_size < before + 500_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    # 100 messages of ~10 KB are in the database file itself, though no commit got near
    # the writers' own checkpoint threshold (16 MB of log).
    assert database.stat().st_size >= before + 500_000
    assert wal.stat().st_size < 16 << 20
    assert desk.checkpointer is not None and desk.checkpointer.checkpoints >= 1


def test_closing_the_desk_stops_the_checkpoint_thread(make_desk):
    desk = make_desk("closing")
    checkpointer = desk.checkpointer
    assert checkpointer is not None and checkpointer._thread.is_alive()
    thread = checkpointer._thread
    desk.close()
    assert not thread.is_alive()
    assert desk.checkpointer is None


def test_every_connection_syncs_its_commits_to_disk(make_desk):
    # A batch's mail is marked done at its source (moved to cur/, deleted from the
    # spool, moved on IMAP) once its commit returns: with synchronous=NORMAL a power cut
    # could take back commits whose mail the source no longer offers.
    desk = make_desk()
    with desk.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
