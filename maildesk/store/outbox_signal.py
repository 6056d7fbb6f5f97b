"""PostgreSQL LISTEN/NOTIFY on `maildesk_outbox`: new notifications wake every sender.

A transaction that writes outbox rows sends `NOTIFY maildesk_outbox`; PostgreSQL
delivers it when (and only if) the transaction commits, to every connection that
listens, so a sender in another daemon, or behind `maildesk ingest` run by the MTA,
sends at once instead of at its next poll. On SQLite there is no such signal: the
daemon wakes its own sender in-process and polls for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

from maildesk.common.backoff import Backoff
from maildesk.common.db_url import libpq_conninfo

log = logging.getLogger(__name__)

CHANNEL = "maildesk_outbox"


def signal_outbox(session: Session) -> None:
    """Tell listening senders, when this transaction commits, that there is mail to send."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


def listen_conninfo(database_url: str) -> str | None:
    """The libpq connection string for listening, or None when the database has no NOTIFY."""
    return libpq_conninfo(database_url)


async def listen_outbox(
    conninfo: str,
    wake: Callable[[], None],
    stop: asyncio.Event,
    *,
    backoff: Backoff | None = None,
    check_seconds: float = 1.0,
) -> None:
    """Call `wake()` for every NOTIFY on the outbox channel until `stop` is set.

    A lost connection is opened again with backoff; each (re)connect also wakes once,
    since a signal may have been missed while no one listened.
    """
    import psycopg  # only PostgreSQL desks get here; psycopg is their extra

    retry = backoff or Backoff(1.0, 30.0)
    failures = 0
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                failures = 0
                wake()
                while not stop.is_set():
                    async for _ in conn.notifies(timeout=check_seconds):
                        wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database restarted, the network dropped, ...
            failures += 1
            delay = retry.seconds(failures)
            log.warning("outbox listener: %s; listening again in %.0f s", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
