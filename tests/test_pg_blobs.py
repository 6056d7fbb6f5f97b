"""Big blobs in PostgreSQL (storage.backend: database): streamed in and out in chunks, and
`maildesk blobs migrate` moving blob files into the database while daemons run."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maildesk.store.blob_chunks import ChunkBlobs
from maildesk.store.blob_migrate import migrate_files
from maildesk.store.models import BlobChunk, Message
from tests.blobkit import MB, PeakMemory, stream_digest, write_big_message
from tests.conftest import make_mail, run_maildesk
from tests.daemon_helpers import DaemonProcess, wait_until

pytestmark = pytest.mark.postgres

BIG_LIMITS = "limits:\n  max_message_bytes: 200000000\n  max_attachment_bytes: 100000000\n"


def _storage(backend: str, path: Path | str = "data") -> str:
    return f"storage:\n  path: {path}\n  backend: {backend}\n"


def _chunks_per_blob(desk) -> dict[str, tuple[int, int]]:
    """sha256 -> (number of chunks, biggest chunk) for every blob in blob_chunks."""
    with desk.read_session() as s:
        rows = s.execute(
            select(BlobChunk.sha256, func.count(), func.max(func.length(BlobChunk.data))).group_by(
                BlobChunk.sha256
            )
        ).all()
    return {sha: (n, biggest) for sha, n, biggest in rows}


def test_50mb_attachment_is_stored_in_chunks_and_read_back_as_a_stream(
    make_desk, postgres_url, tmp_path
):
    desk = make_desk("pg", database_url=postgres_url, extra=_storage("database") + BIG_LIMITS)
    message = tmp_path / "big.eml"
    expected = write_big_message(message, 50 * MB)
    desk.pipeline.process_one(make_mail(subject="warm up"))  # imports, the parser child

    with PeakMemory() as ingest:
        result = desk.pipeline.process_file(message)
    assert result.outcome == "created"

    shown = run_maildesk(tmp_path / "pg", "tickets", "show", result.ticket_ref, "--json")
    [mail] = json.loads(shown.output)["messages"]
    [att] = mail["attachments"]
    assert (att["filename"], att["size"], att["sha256"]) == ("logs.bin", 50 * MB, expected)
    with PeakMemory() as reading:
        assert stream_digest(desk.blobs.open(att["sha256"])) == (expected, 50 * MB)
    assert stream_digest(desk.blobs.open(mail["raw_sha256"])) == stream_digest(message.open("rb"))

    chunks = _chunks_per_blob(desk)
    assert chunks[expected] == (50, MB)  # 1 MiB pieces
    assert mail["raw_sha256"] in chunks
    on_disk = [p for p in desk.blobs.root.rglob("*") if p.is_file()]
    assert on_disk == []  # no blob files, no spool left behind
    print(
        f"\n50 MB attachment on PostgreSQL: ingest peak RSS +{ingest.growth / MB:.1f} MB "
        f"over {ingest.baseline / MB:.0f} MB; streaming it back +{reading.growth / MB:.1f} MB"
    )
    assert ingest.growth < 20 * MB  # the 50 MB never whole in memory
    assert reading.growth < 12 * MB  # a few 1 MiB chunks in flight, whatever the size


def test_postgres_defaults_to_the_database_and_sqlite_keeps_files(make_desk, postgres_url):
    payload = random.Random(2).randbytes(2 * MB)
    raw = make_mail(attachments=[("data.bin", "application/octet-stream", payload)])
    sha = hashlib.sha256(payload).hexdigest()
    pg, lite = make_desk("pg", database_url=postgres_url), make_desk("lite")
    for desk in (pg, lite):
        assert desk.pipeline.process_one(raw).outcome == "created"
        assert desk.blobs.get(sha) == payload
    assert not pg.blobs.path_for(sha).exists() and sha in _chunks_per_blob(pg)
    assert lite.blobs.path_for(sha).exists() and _chunks_per_blob(lite) == {}


def _ingest_big(desk, folder: Path, count: int, size: int, first: int = 0) -> list[Path]:
    """Write `count` big messages as .eml files in `folder`; ingest them if `desk`."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(first, first + count):
        path = folder / f"m{i}.eml"
        write_big_message(path, size, seed=i, message_id=f"<big-{i}@example.org>")
        if desk is not None:
            assert desk.pipeline.process_file(path).outcome == "created"
        paths.append(path)
    return paths


def _all_blobs(desk) -> dict[str, str]:
    """SHA-256 of every raw message and attachment the tickets point at -> bytes' digest."""
    with desk.read_session() as s:
        messages = s.scalars(select(Message)).all()
        shas = {m.raw_sha256 for m in messages} | {
            a.sha256 for m in messages for a in m.attachments
        }
    return {sha: stream_digest(desk.blobs.open(sha))[0] for sha in shas if sha}


def test_migrate_moves_files_into_the_database_while_a_daemon_ingests(
    make_desk, postgres_url, tmp_path
):
    shared = tmp_path / "blobs"  # what used to be the shared filesystem
    box = tmp_path / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (box / folder).mkdir(parents=True)
    maildir = f"maildirs:\n  - {{name: local, path: {box}, poll_seconds: 0.1}}\n"
    # A daemon not switched yet: it keeps writing big blobs as files during the migration.
    old = make_desk("old", database_url=postgres_url, extra=_storage("files", shared) + maildir)
    new = make_desk("new", database_url=postgres_url, extra=_storage("database", shared))
    _ingest_big(old, tmp_path / "first", 4, 3 * MB // 2)
    before = _all_blobs(old)
    assert len(before) == 8 and all(sha == digest for sha, digest in before.items())
    daemon = DaemonProcess(tmp_path / "old" / "maildesk.yaml").start()

    def deliver(seed: int) -> None:
        """A big message into the Maildir; returns once the daemon has stored it."""
        count = _count(new, Message)
        write_big_message(
            box / "tmp" / f"{seed}", 3 * MB // 2, seed=seed, message_id=f"<d{seed}@x>"
        )
        (box / "tmp" / f"{seed}").rename(box / "new" / f"{seed}")
        wait_until(lambda: _count(new, Message) > count, 30, f"message {seed} stored", daemon)

    seen: list[bool] = []

    def meanwhile(step, summary) -> None:
        # Both kinds of reader find every blob at every step, moved or not yet.
        reader = (old, new)[step.done % 2]
        assert {sha: stream_digest(reader.blobs.open(sha))[0] for sha in before} == before
        seen.append(summary.moved > 0 and any(new.blobs.files.stored()))
        if step.done == 2:
            deliver(100)  # a new attachment, written as a file half way through
        if step.done == 4:
            deliver(1)  # the same attachment as the first message: its file was moved

    try:
        deliver(99)  # the daemon is up and ingesting
        summary = migrate_files(new.blobs.files, ChunkBlobs(new.sessions, new.readers), meanwhile)
        assert summary.moved >= 8 and not summary.failed
        assert any(seen)  # reads happened while blobs were in both places
        again = run_maildesk(tmp_path / "new", "blobs", "migrate")  # what the daemon wrote
        assert again.exit_code == 0, again.output
        assert "0 failed" in again.output
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
    assert list(new.blobs.files.stored()) == []
    everything = _all_blobs(new)
    assert len(everything) == 8 + 3 * 2 - 1  # the repeated attachment is stored once
    assert all(sha == digest for sha, digest in everything.items())
    assert set(everything) <= set(_chunks_per_blob(new))


def _count(desk, model) -> int:
    with desk.read_session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_migrate_carries_on_after_being_killed(make_desk, postgres_url, tmp_path):
    desk = make_desk("desk", database_url=postgres_url, extra=_storage("files"))
    _ingest_big(desk, tmp_path / "mail", 8, 2 * MB)
    files, chunks = desk.blobs.files, ChunkBlobs(desk.sessions, desk.readers)
    stored = list(files.stored())
    assert len(stored) == 16
    # The last file's copy committed just before an earlier crash; its file is still there.
    last_sha, last_path = stored[-1]
    with last_path.open("rb") as fh:
        assert chunks.copy(fh, last_sha)

    config = str(tmp_path / "desk" / "maildesk.yaml")
    run = subprocess.Popen(
        [sys.executable, "-m", "maildesk", "--config", config, "blobs", "migrate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert run.stdout is not None
    for line in run.stdout:
        if "1/16 files" in line:
            run.send_signal(signal.SIGKILL)  # a crash, half way
            break
    run.wait(timeout=30)
    left = {sha for sha, _ in files.stored()}
    assert 0 < len(left) < 16 and last_sha in left
    assert _all_blobs(desk) == {sha: sha for sha, _ in stored}  # all whole, somewhere

    again = run_maildesk(tmp_path / "desk", "blobs", "migrate")
    assert again.exit_code == 0, again.output
    assert f"moved {len(left) - 1} blobs" in again.output
    assert "1 were there already" in again.output
    assert list(files.stored()) == []
    assert _all_blobs(desk) == {sha: sha for sha, _ in stored}
    assert set(_chunks_per_blob(desk)) == {sha for sha, _ in stored}


def test_migrate_keeps_a_file_whose_bytes_do_not_match_its_name(make_desk, postgres_url, tmp_path):
    desk = make_desk("desk", database_url=postgres_url, extra=_storage("files"))
    good, bad = b"a" * (2 * MB), b"b" * (2 * MB)
    good_sha = hashlib.sha256(good).hexdigest()
    bad_sha = hashlib.sha256(b"what it was").hexdigest()
    desk.blobs.files.write(good, good_sha)
    desk.blobs.files.write(bad, bad_sha)  # bit rot: the bytes no longer match the name

    result = run_maildesk(tmp_path / "desk", "blobs", "migrate")
    assert result.exit_code == 1
    assert "moved 1 blobs (2.0 MB)" in result.output and "1 failed" in result.output
    assert f"kept {desk.blobs.path_for(bad_sha)}" in result.output
    assert desk.blobs.path_for(bad_sha).exists() and not desk.blobs.path_for(good_sha).exists()
    assert set(_chunks_per_blob(desk)) == {good_sha}
    assert desk.blobs.get(good_sha) == good


def test_migrate_refuses_sqlite(desk_dir):
    result = run_maildesk(desk_dir, "blobs", "migrate")
    assert result.exit_code != 0
    assert "needs a PostgreSQL database.url" in str(result.exception) + result.output
