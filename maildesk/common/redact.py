"""Keeping secrets out of logs, error messages and command output.

Every secret maildesk reads (`Secret.read`, a password inside a database URL) is
remembered here; `redact` replaces those values, and any `user:password@` in a URL,
with `***`. Installed once, every log record is redacted as it is created, including
the text of an exception logged with it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)", re.I)
_known: set[str] = set()
_lock = threading.Lock()
_installed = False


def remember_secret(value: str | None) -> None:
    """Redact `value` from now on wherever maildesk prints or logs text."""
    if value and len(value) >= 4:  # shorter strings would mask ordinary words
        with _lock:
            _known.add(value)
    install_log_redaction()


def redact(text: str) -> str:
    """`text` with every remembered secret and URL password replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


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
