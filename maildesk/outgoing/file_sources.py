"""Where the render process finds the bytes of a notification's files.

The render process has no database. A blob kept as a file (`storage.backend: files`)
is read by the child through a hard link made for it (cheap, and the bytes stay
while `blobs migrate` moves the file); a small blob (a `blobs` row) is handed
over as bytes; a big one in the database (chunks) is first copied, chunk by chunk, to
a spool file under `storage.path`. So the sender's process never holds a big file
whole, and the child reads each one once, while it writes the message.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maildesk.common.errors import MaildeskError
from maildesk.outgoing.file_parts import FilePart

if TYPE_CHECKING:
    from maildesk.store.blobs import BlobStore


class MissingFile(MaildeskError):
    """A file a notification carries is nowhere in the blob store."""


def file_parts_for(
    refs: Sequence[dict[str, Any]], blobs: BlobStore | None
) -> tuple[list[FilePart], list[Path]]:
    """The files named in an outbox row's headers, and the spool files to remove once
    the notification is rendered."""
    if not refs:
        return [], []
    if blobs is None:
        raise MissingFile("this sender has no blob store to read the attachments from")
    parts, spooled = [], []
    try:
        for ref in refs:
            source = _source(ref, blobs, spooled)
            parts.append(
                FilePart(
                    filename=str(ref.get("filename") or ""),
                    content_type=str(ref.get("content_type") or "application/octet-stream"),
                    source=source,
                    content_id=ref.get("content_id"),
                    inline=bool(ref.get("inline")),
                )
            )
    except BaseException:
        remove(spooled)
        raise
    return parts, spooled


def _source(ref: dict[str, Any], blobs: BlobStore, spooled: list[Path]) -> bytes | str:
    sha256 = str(ref.get("sha256", ""))
    try:
        if blobs.files.exists(sha256):
            pinned = _pinned(blobs.path_for(sha256), blobs, spooled)
            if pinned is not None:
                return pinned
        with blobs.open(sha256) as stream:
            if int(ref.get("size") or 0) <= blobs.inline_max:
                return stream.read()
            fh, tmp = blobs.temp_file()
            spooled.append(tmp)
            with fh:
                shutil.copyfileobj(stream, fh, 1 << 20)
            return str(tmp)
    except (FileNotFoundError, ValueError):
        name = ref.get("filename") or "?"
        raise MissingFile(f"attachment {name!r} (blob {sha256}) is not in the blob store") from None


def _pinned(path: Path, blobs: BlobStore, spooled: list[Path]) -> str | None:
    """A hard link to a blob file, for the render child to read: `maildesk blobs migrate`
    may move the file into the database and delete it before the child opens it, and the
    link keeps its bytes until the notification is rendered. None when it was moved
    already (it is read from the database then)."""
    fh, tmp = blobs.temp_file()  # a free name in the spool folder, on the blobs' filesystem
    fh.close()
    tmp.unlink()
    try:
        os.link(path, tmp)
    except FileNotFoundError:
        return None
    except OSError:  # links refused here (EPERM, EMLINK): the file itself, as before
        return str(path)
    spooled.append(tmp)
    return str(tmp)


def remove(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
