"""A claimed batch while it is sent: split into lanes, one per SMTP session, and what
the lanes share (the claim, its results, when to renew it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from maildesk.outgoing.mark_writer import MarkWriter
from maildesk.store.outbox_queue import Job


@dataclass
class SendingBatch:
    """A claimed batch being sent: its claim, its marks, when the claim is next renewed."""

    token: str
    marks: MarkWriter
    renew_at: datetime
    done: int = 0  # jobs sent or given up on (marked)
    held: set[int] | None = None  # after a renewal: the rows still claimed under `token`


def lanes(jobs: list[Job], count: int) -> list[list[Job]]:
    """`jobs` in `count` lanes, each in claim order; a ticket's jobs all in one lane."""
    found: list[list[Job]] = [[] for _ in range(count)]
    for job in jobs:
        key = job.ticket_id if job.ticket_id is not None else job.id
        found[key % count].append(job)
    return found
