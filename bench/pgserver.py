"""A throwaway PostgreSQL cluster for the benchmarks, started as the test suite starts it.

Its settings are the suite's (`tests/servers.py`: fsync, synchronous_commit and
full_page_writes off, data on tmpfs when there is one), so a benchmark measures CPU
and round trips, not the disk. Clients reach it over its Unix socket by default.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Cluster:
    """A running cluster: where its socket is and how to make databases on it."""

    host: str  # the socket folder, or 127.0.0.1 for TCP
    port: int
    data: Path

    def url(self, database: str) -> str:
        if self.host.startswith("/"):
            return f"postgresql+psycopg://postgres@/{database}?host={self.host}&port={self.port}"
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={database}"

    def create_database(self, name: str) -> str:
        """An empty database (dropped first if it exists); its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def throwaway_postgres(*, tcp: bool = False) -> Iterator[Cluster]:
    """Start a private cluster on a free port; stop and delete it afterwards."""
    sys.path.insert(0, str(ROOT))
    from tests.servers import PostgresServer, _as_postgres, _pg_bin, free_port, scratch_dir

    bindir = _pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (Debian package postgresql)")
    root = scratch_dir("maildesk-bench-pg-")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    initdb = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres"]
    subprocess.run(
        _as_postgres([*initdb, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    server = PostgresServer("127.0.0.1", free_port(), root)
    server.start()
    try:
        yield Cluster("127.0.0.1" if tcp else str(root), server.port, root / "data")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
