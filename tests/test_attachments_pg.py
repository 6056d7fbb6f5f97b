"""Files kept in PostgreSQL chunks reach the agents: the sender copies them to a spool
file for the render process (which has no database) and removes it afterwards."""

from __future__ import annotations

import hashlib
import random

import pytest

from tests.attachkit import customer_mail, files_of
from tests.mailflow import parse, send_all
from tests.wirecheck import wire_problems

pytestmark = pytest.mark.postgres

MB = 1024 * 1024


def test_a_file_in_database_chunks_reaches_the_agents_byte_for_byte(
    make_desk, postgres_url, smtp_sink
):
    extra = "storage:\n  path: data\n  backend: database\n" + smtp_sink.smtp_config()
    desk = make_desk("pg", database_url=postgres_url, extra=extra)
    logs = random.Random(7).randbytes(3 * MB)  # over inline_max_bytes: kept in chunks
    desk.pipeline.process_one(customer_mail(files=[("logs.bin", "application/octet-stream", logs)]))
    assert not desk.blobs.files.exists(hashlib.sha256(logs).hexdigest())  # not a file
    send_all(desk)
    (raw,) = [i.data for i in smtp_sink.received if "alice@example.com" in i.rcpt_tos]
    assert wire_problems(raw) == []
    assert files_of(parse(raw)) == {"logs.bin": logs}
    spool = desk.blobs.root / ".tmp"
    assert not spool.exists() or list(spool.iterdir()) == []  # no spool file left behind
