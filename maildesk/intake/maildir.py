"""A Maildir folder (what Postfix, Exim or Dovecot deliver into) as a mail source.

It gives the messages waiting in `new/`, and those in `cur/` without the Seen flag;
each is marked seen, moved to `cur/` with the `S` flag as a mail client would, only
after its batch is committed (see `maildesk.service.file_ingest`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from maildesk.common.errors import MaildeskError


class MaildirError(MaildeskError):
    """A folder that is not a Maildir."""


class Maildir:
    """A Maildir folder: which messages wait, and marking one seen."""

    def __init__(self, root: Path):
        self.root = root
        missing = [d for d in ("new", "cur") if not (root / d).is_dir()]
        if missing:
            raise MaildirError(
                f"{root} is not a Maildir: it has no {' or '.join(d + '/' for d in missing)} "
                "folder (a Maildir holds cur/, new/ and tmp/)"
            )

    def waiting(self) -> list[Path]:
        """Messages not seen yet, oldest delivery first (only those are stat'ed: a cur/
        with years of seen mail costs a directory listing per poll, nothing more)."""
        found = _files(self.root / "new", lambda name: True)
        found += _files(self.root / "cur", lambda name: "S" not in _flags(name))
        return sorted(found, key=_delivery_order)

    def mark_seen(self, path: Path) -> None:
        """Move a message to cur/ with the Seen flag (gone already: another reader took it)."""
        base, _, _ = path.name.partition(":2,")
        flags = "".join(sorted(set(_flags(path.name)) | {"S"}))
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, self.root / "cur" / f"{base}:2,{flags}")


def _files(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    # Dot files are not messages (some delivery agents keep state there).
    with os.scandir(folder) as entries:
        return [
            Path(e.path)
            for e in entries
            if not e.name.startswith(".") and wanted(e.name) and e.is_file()
        ]


def _flags(name: str) -> str:
    return name.partition(":2,")[2]


def _delivery_order(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except FileNotFoundError:
        return (0.0, path.name)
