"""Attachment filenames made harmless: no paths, no control characters, bounded length."""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_MAX_BYTES = 200
_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(10)),
    *(f"LPT{i}" for i in range(10)),
}


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """A display and download name with no directory parts or control characters.

    `../../etc/passwd` becomes `passwd`: the last path element is what a user meant.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name or name.split(".")[0].upper() in _RESERVED:
        name = f"{fallback}-{name}" if name else fallback
    return _truncate(name)


def _truncate(name: str) -> str:
    if len(name.encode("utf-8")) <= _MAX_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext = name, ""
    budget = _MAX_BYTES - len(ext.encode("utf-8")) - (1 if ext else 0)
    cut = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return f"{cut}.{ext}" if ext else cut
