"""What maildesk creates holds mail and settings: only its own user may read it, whatever
the umask (0022 here, the usual default)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from maildesk.cli import cli
from maildesk.common.config_file import load_config
from maildesk.service.desk import Desk
from maildesk.store.db import make_engine, upgrade
from tests.conftest import make_mail, write_config


@pytest.fixture(autouse=True)
def usual_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_private_desk(tmp_path):
    desk = tmp_path / "desk"
    result = CliRunner().invoke(cli, ["init", str(desk)])
    assert result.exit_code == 0, result.output
    assert mode(desk) == 0o700
    assert mode(desk / "maildesk.yaml") == 0o600
    assert mode(desk / "rules.yaml") == 0o600
    assert mode(desk / "maildesk.db") == 0o600


def test_init_force_makes_an_open_config_private(tmp_path):
    desk = tmp_path / "desk"
    desk.mkdir()
    (desk / "maildesk.yaml").write_text("# old\n")
    (desk / "maildesk.yaml").chmod(0o644)
    result = CliRunner().invoke(cli, ["init", "--force", str(desk)])
    assert result.exit_code == 0, result.output
    assert mode(desk / "maildesk.yaml") == 0o600


def test_database_log_blob_folders_and_spool_files_are_private(tmp_path):
    path = write_config(
        tmp_path / "desk",
        database_url="sqlite:///db/maildesk.db",  # a folder that does not exist yet
        extra="storage:\n  path: blobs\n  inline_max_bytes: 1024\n",
    )
    config = load_config(path)
    engine = make_engine(config.database_url())
    upgrade(engine)  # as `maildesk init` does
    engine.dispose()
    desk = Desk.build(config)
    try:
        attachment = ("big.bin", "application/octet-stream", os.urandom(50_000))
        result = desk.pipeline.process_one(make_mail(attachments=[attachment]))
        assert result.outcome == "created"
        database = tmp_path / "desk" / "db" / "maildesk.db"
        assert mode(database.parent) == 0o700
        for name in ("maildesk.db", "maildesk.db-wal", "maildesk.db-shm"):
            assert mode(database.parent / name) == 0o600, name
        blobs = tmp_path / "desk" / "blobs"
        files = [p for p in blobs.rglob("*") if p.is_file()]
        folders = [blobs, *(p for p in blobs.rglob("*") if p.is_dir())]
        assert files and len(folders) > 1
        assert {mode(p) for p in files} == {0o600}
        assert {mode(p) for p in folders} == {0o700}
        spool, spool_path = desk.blobs.temp_file()
        with spool:
            assert mode(spool_path) == 0o600 and mode(spool_path.parent) == 0o700
        spool_path.unlink()
    finally:
        desk.close()
