"""The blob store's choice of backend, and chunked blobs read back piece by piece."""

from __future__ import annotations

import hashlib
import io

import pytest

from maildesk.common.config_file import load_config
from maildesk.common.errors import ConfigError
from maildesk.store.blob_chunks import BlobMismatch, ChunkBlobs
from tests.conftest import write_config


def _config(tmp_path, backend: str | None, url: str | None = None):
    line = f"  backend: {backend}\n" if backend else ""
    path = write_config(tmp_path, database_url=url, extra=f"storage:\n  path: data\n{line}")
    return load_config(path)


def test_backend_defaults_to_files_on_sqlite_and_database_elsewhere(tmp_path):
    pg = "postgresql+psycopg://maildesk@db.example.org/maildesk"
    assert _config(tmp_path, None).storage.backend_for("sqlite:///x.db") == "files"
    assert _config(tmp_path, None, pg).storage.backend_for(pg) == "database"
    assert _config(tmp_path, "files", pg).storage.backend_for(pg) == "files"


def test_database_backend_on_sqlite_is_refused_when_the_config_is_loaded(tmp_path):
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, "database")
    assert "storage.backend: database needs PostgreSQL" in str(refused.value)


@pytest.fixture
def chunks(desk) -> ChunkBlobs:
    return ChunkBlobs(desk.sessions, desk.read_session, chunk_bytes=7)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 7, 8, 100])
def test_chunks_read_back_whole_in_pieces_of_any_size(chunks, size):
    data = bytes(range(size))
    assert chunks.copy(io.BytesIO(data), _sha(data))
    with chunks.open(_sha(data)) as fh:  # type: ignore[union-attr]
        pieces = iter(lambda: fh.read(3), b"")
        assert b"".join(pieces) == data
    with chunks.open(_sha(data)) as fh:  # type: ignore[union-attr]
        assert fh.read() == data


def test_a_blob_is_stored_once_and_bytes_under_a_wrong_name_not_at_all(chunks):
    data = b"the same attachment, sent twice"
    assert chunks.copy(io.BytesIO(data), _sha(data)) is True
    assert chunks.copy(io.BytesIO(data), _sha(data)) is False
    wrong = _sha(b"something else")
    with pytest.raises(BlobMismatch, match=f"filed as {wrong}"):
        chunks.copy(io.BytesIO(data + b"!"), wrong)
    assert not chunks.exists(wrong) and chunks.open(wrong) is None
    assert chunks.exists(_sha(data))


def test_a_blob_file_handed_to_the_render_process_survives_its_migration(make_desk):
    # `maildesk blobs migrate` moves a file into the database and deletes it; a
    # notification being rendered meanwhile must still read its attachment.
    from maildesk.outgoing.file_sources import file_parts_for, remove

    desk = make_desk()
    data = bytes(range(256)) * 8192  # 2 MiB: over inline_max, so a file
    sha256 = desk.blobs.put(data, lambda *_: None)
    assert desk.blobs.files.exists(sha256)
    ref = {"sha256": sha256, "size": len(data), "filename": "log.bin"}
    parts, spooled = file_parts_for([ref], desk.blobs)
    desk.blobs.path_for(sha256).unlink()  # what migrate does once its copy committed
    try:
        with open(parts[0].source, "rb") as fh:
            assert fh.read() == data
    finally:
        remove(spooled)
    assert not any(p.exists() for p in spooled)
