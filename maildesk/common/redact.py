"""Keeping secrets out of logs, error messages, stored errors and command output.

Every secret maildesk reads (`Secret.read`, a password inside a database URL) is
remembered here under the name of where it came from; `redact` replaces those values
with `***`, and also their base64 forms (as a server may echo an AUTH PLAIN/LOGIN
exchange back), any `user:password@` in a URL, `Bearer` tokens and base64 XOAUTH2
strings. Only the newest KEEP_PER_SOURCE values of each source are kept:
a token command that hands out a fresh token every hour does not grow the list
forever, and the current value of a source is never dropped.

Installed once, every log record is redacted as it is created, including the text of
an exception logged with it.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections import OrderedDict
from typing import Any

MASK = "***"
# The current value of each source plus the ones before it that may still show up in an
# error text written before the rotation.
KEEP_PER_SOURCE = 3
MIN_SECRET = 4  # shorter values would mask ordinary words
MIN_BASE64 = 8  # shorter base64 fragments would match unrelated base64 text

# The look-behind starts a match only where a scheme can start: without it a long run
# of letters is rescanned from every position (quadratic on a big message body).
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)", re.I
)
# RFC 6750 b64token after "Bearer" (HTTP headers, and "auth=Bearer" inside XOAUTH2).
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.I)
# The SASL XOAUTH2 client response ("user=...\x01auth=Bearer ...") in base64.
_XOAUTH2_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])dXNlcj[0-3][A-Za-z0-9+/]{8,}={0,2}")
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class _Remembered:
    """One secret: its value and what it looks like base64-encoded at any alignment."""

    def __init__(self, value: str):
        self.value = value
        self.encoded = _base64_fragments(value.encode("utf-8"))


_sources: dict[str, OrderedDict[str, _Remembered]] = {}
_current: list[_Remembered] = []  # every remembered secret, longest first
_lock = threading.Lock()
_installed = False


def remember_secret(value: str | None, source: str = "secret") -> None:
    """Redact `value` from now on wherever maildesk prints, stores or logs text.

    `source` names where it came from ("SMTP password"); a source keeps its newest
    KEEP_PER_SOURCE values.
    """
    if value and len(value) >= MIN_SECRET:
        with _lock:
            values = _sources.setdefault(source, OrderedDict())
            if value in values:
                values.move_to_end(value)
            else:
                values[value] = _Remembered(value)
                while len(values) > KEEP_PER_SOURCE:
                    values.popitem(last=False)
                _reindex()
    install_log_redaction()


def remembered_count() -> int:
    """How many secret values are remembered now (all sources)."""
    with _lock:
        return len(_current)


def _reindex() -> None:
    unique = {r.value: r for values in _sources.values() for r in values.values()}
    _current[:] = sorted(unique.values(), key=lambda r: len(r.value), reverse=True)


def redact(text: str) -> str:
    """`text` with every remembered secret (plain or base64), URL password, bearer
    token and base64 XOAUTH2 string replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _BEARER.sub(lambda m: m.group("head") + MASK, text)
    text = _XOAUTH2_BASE64.sub(MASK, text)
    with _lock:
        secrets = list(_current)
    for secret in secrets:
        if secret.value in text:
            text = text.replace(secret.value, MASK)
        for fragment in secret.encoded:
            text = _mask_base64_around(text, fragment)
    return text


def _mask_base64_around(text: str, fragment: str) -> str:
    """Replace each whole base64 word that contains `fragment` (found with str.find and
    widened by hand: a regex with a leading `[...]*` is quadratic on long base64 runs)."""
    start = text.find(fragment)
    while start != -1:
        low, high = start, start + len(fragment)
        while low > 0 and text[low - 1] in _BASE64_CHARS:
            low -= 1
        while high < len(text) and text[high] in _BASE64_CHARS:
            high += 1
        if text.startswith("==", high):
            high += 2
        elif text.startswith("=", high):
            high += 1
        text = text[:low] + MASK + text[high:]
        start = text.find(fragment, low + len(MASK))
    return text


def _base64_fragments(data: bytes) -> list[str]:
    """What base64 of any text containing `data` must contain, for each of the three
    positions `data` can start at within a 3-byte group: the 4-character groups made
    of `data`'s bytes alone (AUTH PLAIN puts "\\0user\\0" before the password)."""
    fragments = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        first = 1 if shift else 0  # the group holding the padding bytes is not `data`'s
        last = (shift + len(data)) // 3  # groups past it mix in whatever follows
        fragment = encoded[4 * first : 4 * last]
        if len(fragment) >= MIN_BASE64:
            fragments.append(fragment)
    return fragments


def install_log_redaction() -> None:
    """Make every log record (message and exception text) pass through `redact`."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
