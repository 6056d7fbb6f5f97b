"""`maildesk blobs migrate`: blob files moved into the database, with the daemons running.

Each file is copied into chunk rows in one transaction, its SHA-256 checked on the way,
and deleted only after that transaction has committed. Readers look in the database
first and then at the files, so every blob is found at every moment; a run that stops
half way (a crash, a kill) leaves each blob whole in at least one place, and the next
run carries on: a file whose copy had committed is simply deleted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from maildesk.store.blob_chunks import BlobMismatch, ChunkBlobs
from maildesk.store.blob_files import FileBlobs

Outcome = Literal["moved", "already", "failed"]


@dataclass
class Step:
    """One file dealt with: `done` of `total`, and what became of it."""

    done: int
    total: int
    sha256: str
    size: int
    outcome: Outcome


@dataclass
class Summary:
    moved: int = 0
    moved_bytes: int = 0
    already: int = 0  # copied by an earlier run (or a daemon): only the file was deleted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sha256, why)

    def note(self, step: Step, why: str = "") -> None:
        if step.outcome == "moved":
            self.moved += 1
            self.moved_bytes += step.size
        elif step.outcome == "already":
            self.already += 1
        else:
            self.failed.append((step.sha256, why))


def migrate_files(
    files: FileBlobs,
    chunks: ChunkBlobs,
    progress: Callable[[Step, Summary], None] | None = None,
) -> Summary:
    """Move every blob file into the database; files that fail their check stay put."""
    stored = list(files.stored())
    summary = Summary()
    for done, (sha256, path) in enumerate(stored, start=1):
        why = ""
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                copied = chunks.copy(fh, sha256)
        except FileNotFoundError:
            continue  # another run (or a cleanup) took it meanwhile
        except BlobMismatch as exc:
            copied, why = False, str(exc)
        outcome: Outcome = "failed" if why else "moved" if copied else "already"
        if not why:
            path.unlink(missing_ok=True)  # only now: the copy has committed
        step = Step(done, len(stored), sha256, size, outcome)
        summary.note(step, why)
        if progress is not None:
            progress(step, summary)
    return summary
