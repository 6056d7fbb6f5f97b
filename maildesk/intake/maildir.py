"""A Maildir folder (what Postfix, Exim or Dovecot deliver into) as a mail source.

It gives the messages waiting in `new/`, and those in `cur/` without the Seen flag;
each is marked seen, moved to `cur/` with the `S` flag as a mail client would, only
after its batch is committed (see `maildesk.service.file_ingest`).
"""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from maildesk.common.errors import MaildeskError


class MaildirError(MaildeskError):
    """A folder that is not a Maildir."""


class Maildir:
    """A Maildir folder: which messages wait, and marking one seen."""

    def __init__(self, root: Path):
        self.root = root
        self.unseen = 0  # unseen messages at the last `waiting`, listed or not
        missing = [d for d in ("new", "cur") if not (root / d).is_dir()]
        if missing:
            raise MaildirError(
                f"{root} is not a Maildir: it has no {' or '.join(d + '/' for d in missing)} "
                "folder (a Maildir holds cur/, new/ and tmp/)"
            )

    def waiting(self, limit: int | None = None) -> list[Path]:
        """Messages not seen yet, oldest delivery first (only those are stat'ed: a cur/
        with years of seen mail costs a directory listing per poll, nothing more).

        With `limit`, only that many oldest: a backlog of any size is listed in the
        same memory (listing 100,000 waiting files whole took 58 MiB, 10,000 of them 5).
        `unseen` is then how many there were in all.
        """
        unseen = self._unseen()
        found = sorted(unseen) if limit is None else heapq.nsmallest(limit, unseen)
        self.unseen = unseen.count
        return [Path(folder, name) for _, name, folder in found]

    def slices(self, size: int) -> Iterator[list[Path]]:
        """The unseen messages, oldest first, `size` at a time: each slice is listed
        once the one before has been taken (marked seen), so a backlog is never
        listed whole."""
        while True:
            waiting = self.waiting(size)
            if waiting:
                yield waiting
            if len(waiting) < size:
                return

    def _unseen(self) -> _Unseen:
        return _Unseen(
            [
                (self.root / "new", lambda name: True),
                (self.root / "cur", lambda name: "S" not in _flags(name)),
            ]
        )

    def mark_seen(self, path: Path) -> None:
        """Move a message to cur/ with the Seen flag (gone already: another reader took it)."""
        base, _, _ = path.name.partition(":2,")
        flags = "".join(sorted(set(_flags(path.name)) | {"S"}))
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, self.root / "cur" / f"{base}:2,{flags}")


class _Unseen:
    """(delivery time, name, folder) of each unseen message file, one at a time; counts them."""

    def __init__(self, folders: list[tuple[Path, Callable[[str], bool]]]):
        self.folders = folders
        self.count = 0

    def __iter__(self) -> Iterator[tuple[float, str, str]]:
        for folder, wanted in self.folders:
            with os.scandir(folder) as entries:
                for entry in entries:
                    # Dot files are not messages (some delivery agents keep state there).
                    if entry.name.startswith(".") or not wanted(entry.name):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        delivered = entry.stat().st_mtime
                    except FileNotFoundError:  # taken by another reader meanwhile
                        continue
                    self.count += 1
                    yield delivered, entry.name, str(folder)


def _flags(name: str) -> str:
    return name.partition(":2,")[2]
