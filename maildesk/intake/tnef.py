"""Outlook's TNEF (`winmail.dat`): the files and text body packed inside it.

Outlook wraps attachments in `application/ms-tnef` when it sends "rich text" mail.
This reads the attachment records of the format (MS-OXTNEF) and ignores the rest;
anything malformed ends the walk and keeps what was read so far.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SIGNATURE = 0x223E9F78

# Attribute ids (the low 16 bits name the attribute, the high 16 bits its type).
_ATT_BODY = 0x800C
_ATT_ATTACH_DATA = 0x800F
_ATT_ATTACH_TITLE = 0x8010
_ATT_ATTACH_RENDDATA = 0x9002
_ATT_ATTACHMENT = 0x9005
_ATT_OEM_CODEPAGE = 0x9007

# MAPI properties inside attAttachment.
_PR_ATTACH_DATA = 0x3701
_PR_ATTACH_LONG_FILENAME = 0x3707
_PR_ATTACH_FILENAME = 0x3704
_PR_ATTACH_MIME_TAG = 0x370E

_PT_FIXED = {0x02: 4, 0x03: 4, 0x04: 4, 0x05: 8, 0x06: 8, 0x07: 8, 0x0A: 4, 0x0B: 4, 0x14: 8}
_PT_FIXED.update({0x40: 8, 0x48: 16})
_PT_STRING8, _PT_UNICODE, _PT_BINARY, _PT_OBJECT = 0x1E, 0x1F, 0x102, 0x0D
_MV_FLAG = 0x1000
MAX_FILES = 500


class TnefError(ValueError):
    """The data is not TNEF, or is cut short."""


@dataclass
class TnefFile:
    """One file found inside a TNEF stream."""

    name: str = ""
    data: bytes = b""
    content_type: str = "application/octet-stream"


@dataclass
class TnefContent:
    files: list[TnefFile] = field(default_factory=list)
    body: str = ""
    complete: bool = True  # False when the stream was damaged and reading stopped early


def parse_tnef(data: bytes) -> TnefContent:
    """The files and plain-text body in a TNEF stream; raises TnefError if it is not TNEF."""
    if len(data) < 6 or struct.unpack_from("<I", data)[0] != SIGNATURE:
        raise TnefError("not a TNEF stream (bad signature)")
    content = TnefContent()
    codepage = "cp1252"
    pos = 6
    current: TnefFile | None = None
    while pos < len(data):
        if pos + 9 > len(data):
            content.complete = False
            break
        level, attr, length = struct.unpack_from("<BII", data, pos)
        start = pos + 9
        end = start + length
        if end + 2 > len(data) or level not in (1, 2):
            content.complete = False
            break
        value = data[start:end]
        pos = end + 2  # the checksum is not worth failing on
        attr_id = attr & 0xFFFF
        if attr_id == _ATT_OEM_CODEPAGE and len(value) >= 4:
            codepage = _codepage(struct.unpack_from("<I", value)[0])
        elif attr_id == _ATT_BODY and level == 1:
            content.body = _text(value, codepage)
        elif attr_id == _ATT_ATTACH_RENDDATA:
            if len(content.files) >= MAX_FILES:
                content.complete = False
                break
            current = TnefFile()
            content.files.append(current)
        elif current is not None and attr_id == _ATT_ATTACH_TITLE:
            current.name = current.name or _text(value, codepage)
        elif current is not None and attr_id == _ATT_ATTACH_DATA:
            current.data = value
        elif current is not None and attr_id == _ATT_ATTACHMENT:
            _apply_mapi(current, value)
    content.files = [f for f in content.files if f.data or f.name]
    return content


def _apply_mapi(target: TnefFile, value: bytes) -> None:
    props = _mapi_props(value)
    name = props.get(_PR_ATTACH_LONG_FILENAME) or props.get(_PR_ATTACH_FILENAME)
    if isinstance(name, str) and name:
        target.name = name
    mime = props.get(_PR_ATTACH_MIME_TAG)
    if isinstance(mime, str) and "/" in mime:
        target.content_type = mime.strip().lower()
    blob = props.get(_PR_ATTACH_DATA)
    if isinstance(blob, bytes) and blob and not target.data:
        target.data = blob


def _mapi_props(data: bytes) -> dict[int, str | bytes]:
    """String and binary MAPI properties by id; stops quietly at the first damage."""
    found: dict[int, str | bytes] = {}
    try:
        (count,) = struct.unpack_from("<I", data)
        pos = 4
        for _ in range(min(count, 10000)):
            ptype, pid = struct.unpack_from("<HH", data, pos)
            pos += 4
            if pid >= 0x8000:  # a named property: GUID, kind, then an id or a name
                (kind,) = struct.unpack_from("<I", data, pos + 16)
                pos += 20
                if kind == 0:
                    pos += 4
                else:
                    (name_len,) = struct.unpack_from("<I", data, pos)
                    pos += 4 + _pad4(name_len)
            values, pos = _mapi_values(data, pos, ptype)
            if values and ptype & ~_MV_FLAG in (_PT_STRING8, _PT_UNICODE, _PT_BINARY, _PT_OBJECT):
                found.setdefault(pid, values[0])
    except struct.error:
        pass
    return found


def _mapi_values(data: bytes, pos: int, ptype: int) -> tuple[list[str | bytes], int]:
    base = ptype & ~_MV_FLAG
    multi = bool(ptype & _MV_FLAG)
    if base in _PT_FIXED and not multi:
        return [], pos + max(4, _PT_FIXED[base])
    count = 1
    if multi or base in (_PT_STRING8, _PT_UNICODE, _PT_BINARY, _PT_OBJECT):
        (count,) = struct.unpack_from("<I", data, pos)
        pos += 4
    if base in _PT_FIXED:  # skipped in one step: a count of 10000 in 4 bytes costs no loop
        end = pos + count * _PT_FIXED[base]
        if end > len(data):
            raise struct.error("values run past the end")
        return [], end
    values: list[str | bytes] = []
    for _ in range(min(count, 10000)):
        (length,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + length > len(data):
            raise struct.error("value runs past the end")
        raw = data[pos : pos + length]
        pos += _pad4(length)
        if base == _PT_UNICODE:
            values.append(raw.decode("utf-16-le", "replace").rstrip("\x00"))
        elif base == _PT_STRING8:
            values.append(raw.decode("cp1252", "replace").rstrip("\x00"))
        elif base == _PT_OBJECT:
            values.append(raw[16:])  # skip the interface GUID
        else:
            values.append(raw)
    return values, pos


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _codepage(number: int) -> str:
    name = f"cp{number}"
    try:
        "".encode(name)
    except LookupError:
        return "cp1252"
    return name


def _text(value: bytes, codepage: str) -> str:
    return value.split(b"\x00", 1)[0].decode(codepage, "replace")
