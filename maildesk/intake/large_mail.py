"""Reading a message too big to parse whole: cut its skeleton, parse that, unpack winmail.dat.

All of it reads received bytes, so it runs where parsing runs: in a parser child,
within the time and memory limits (see `parser_children`), or in-process with
`isolate_parser: false`.
"""

from __future__ import annotations

from typing import BinaryIO

from maildesk.intake.blob_writer import BlobWriter
from maildesk.intake.message import (
    DroppedAttachment,
    ParsedAttachment,
    ParsedMessage,
    ParseLimits,
    human_size,
)
from maildesk.intake.parse import parse_message
from maildesk.intake.skeleton import cut_skeleton
from maildesk.intake.tnef import TnefError, parse_tnef


def read_large(stream: BinaryIO, blobs: BlobWriter, limits: ParseLimits) -> ParsedMessage:
    """Big bodies cut out to `blobs` as they stream by; what is left is parsed.

    Raises SkeletonTooLarge when even the headers and text are too big to parse.
    """
    skeleton = cut_skeleton(
        stream,
        blobs,
        spill_bytes=limits.spill_bytes,
        max_attachment_bytes=limits.max_attachment_bytes,
        body_spill_bytes=limits.max_body_bytes,
    )
    msg = parse_message(skeleton.data, limits=limits, spilled=skeleton.spilled)
    msg.defects.extend(skeleton.defects)
    expand_stored_tnef(msg, blobs, limits.max_attachment_bytes)
    return msg


def expand_stored_tnef(msg: ParsedMessage, blobs: BlobWriter, max_attachment_bytes: int) -> None:
    """Unpack the winmail.dat files that were cut out whole, as parse does for small ones."""
    kept: list[ParsedAttachment] = []
    for att in msg.attachments:
        is_tnef = att.content_type == "application/ms-tnef" or att.filename.lower() == "winmail.dat"
        if not (att.blob and is_tnef):
            kept.append(att)
            continue
        try:
            content = parse_tnef(blobs.get_file(att.blob))
        except (TnefError, OSError):
            kept.append(att)
            continue
        if not content.complete or not (content.files or content.body):
            kept.append(att)
        for index, item in enumerate(content.files, 1):
            name = item.name or f"winmail-{index}.bin"
            if len(item.data) > max_attachment_bytes:
                reason = f"larger than the {human_size(max_attachment_bytes)} attachment limit"
                msg.dropped.append(
                    DroppedAttachment(name, item.content_type, len(item.data), reason)
                )
                continue
            sha = blobs.put_file(item.data)
            kept.append(
                ParsedAttachment(name, item.content_type, b"", blob=sha, blob_size=len(item.data))
            )
        if content.body and not msg.text.strip():
            msg.text = content.body.replace("\x00", "")
    msg.attachments = kept
