"""Blob rows: raw messages and attachments up to `storage.inline_max_bytes`, in `blobs`,
inserted in the transaction of the rows that refer to them; one row per hash.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from maildesk.store.models import Blob
from maildesk.store.pg_bulk import driver_connection, execute_binary, sqlalchemy_errors

__all__ = ["insert_blobs", "insert_new_blobs"]


def insert_blobs(session: Session, blobs: dict[str, bytes]) -> None:
    """Insert blob rows, skipping those already stored (same hash, same bytes)."""
    if not blobs:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        for params in _unnest_params(blobs):
            execute_binary(session, _INSERT_UNNEST, params)
        return
    rows = [{"sha256": sha, "size": len(data), "data": data} for sha, data in blobs.items()]
    statement = sqlite.insert(Blob).on_conflict_do_nothing(index_elements=["sha256"])
    if dialect != "sqlite":
        statement = insert(Blob)  # other databases: plain insert (duplicates were filtered)
    session.execute(statement, rows)


def insert_new_blobs(session: Session, blobs: dict[str, bytes]) -> None:
    """Insert a batch's blob rows. On PostgreSQL one query finds those not stored yet,
    and a binary COPY inserts them (60% of the time of INSERT ... ON CONFLICT); should
    another transaction store one of them meanwhile, the COPY fails with an
    IntegrityError and the pipeline redoes the batch message by message, as when two
    daemons store the same message."""
    if not blobs or session.get_bind().dialect.name != "postgresql":
        insert_blobs(session, blobs)
        return
    driver = driver_connection(session)
    with sqlalchemy_errors(_STORED):
        stored = {row[0] for row in driver.execute(_STORED, (list(blobs),))}
    missing = sorted((sha, data) for sha, data in blobs.items() if sha not in stored)
    if not missing:
        return
    with (
        sqlalchemy_errors(_COPY_BLOBS),
        driver.cursor() as cursor,
        cursor.copy(_COPY_BLOBS) as copy,
    ):
        copy.set_types(["text", "int8", "bytea"])
        for sha, data in missing:
            copy.write_row((sha, len(data), data))


_STORED = "SELECT sha256 FROM blobs WHERE sha256 = ANY(%s)"
_COPY_BLOBS = "COPY blobs (sha256, size, data) FROM STDIN (FORMAT BINARY)"
# A statement per this many bytes: an executemany would be one INSERT per blob on the
# server; one statement for all of a batch's blobs could hold hundreds of megabytes
# (at 8 MB the daemon's peak RSS was 10 MB higher, at no gain in speed).
_UNNEST_BYTES = 1 << 20
_INSERT_UNNEST = (
    "INSERT INTO blobs (sha256, size, data) "
    "SELECT * FROM unnest(%b::varchar[], %b::bigint[], %b::bytea[]) "
    "ON CONFLICT (sha256) DO NOTHING"
)


def _unnest_params(blobs: dict[str, bytes]) -> Iterator[tuple[list[str], list[int], list[bytes]]]:
    """The parameters of one INSERT per run of blobs, in hash order: two transactions that
    insert the same blobs then take their index locks in the same order (no deadlock)."""
    for chunk in _by_size(sorted(blobs.items()), _UNNEST_BYTES):
        yield [sha for sha, _ in chunk], [len(data) for _, data in chunk], [d for _, d in chunk]


def _by_size(items: list[tuple[str, bytes]], limit: int) -> Iterator[list[tuple[str, bytes]]]:
    """Runs of items of at most `limit` bytes together (or one bigger item alone)."""
    chunk: list[tuple[str, bytes]] = []
    size = 0
    for item in items:
        if chunk and size + len(item[1]) > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item[1])
    if chunk:
        yield chunk
